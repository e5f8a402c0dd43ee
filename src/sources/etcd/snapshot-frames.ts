import { Transform, type TransformCallback } from 'node:stream';
import { Wire } from './kv-wire.js';

/**
 * Maintenance.Snapshot's response body (gRPC length-prefixed messages of SnapshotResponse{header 1,
 * remaining_bytes 2, blob 3, version 4}) to the snapshot's bytes, as views of the HTTP/2 frames they
 * arrived in: a multi-GB snapshot is never copied or rebuilt message by message on its way to the
 * hash and the compressor. Only the small fields around each blob are parsed (the header, for the
 * revision); everything else is skipped by its wire type, as proto3 readers do.
 */
export class SnapshotFrames extends Transform {
  private state: State = State.Prefix;
  /** Bytes still to read of the current gRPC message body, and of the current field. */
  private messageLeft = 0;
  private fieldLeft = 0;
  private prefix = Buffer.alloc(5);
  private prefixHave = 0;
  private varint = 0;
  private scale = 1;
  private field = 0;
  private header: Buffer[] = [];
  private firstRevision: number | undefined;
  private messages = 0;

  /** @param ended - at the end of the body: the call's failure, if it failed (a gRPC status, a cut). */
  constructor(private readonly ended: () => Error | undefined) {
    super();
  }

  /** The revision in the first message's header, once it has arrived, if etcd sent one (3.4 and 3.5 do not). */
  revision(): number | undefined {
    return this.firstRevision;
  }

  /** True when the body stopped between messages: anything else was cut short. */
  atMessageBoundary(): boolean {
    return this.state === State.Prefix && this.prefixHave === 0;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.consume(chunk);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    done(this.ended());
  }

  private consume(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.state === State.Prefix) {
        const take = Math.min(5 - this.prefixHave, chunk.length - at);
        chunk.copy(this.prefix, this.prefixHave, at, at + take);
        this.prefixHave += take;
        at += take;
        if (this.prefixHave < 5) return;
        this.prefixHave = 0;
        if (this.prefix[0] !== 0) throw new Error('etcd sent a compressed gRPC message, which this client did not ask for');
        this.messageLeft = this.prefix.readUInt32BE(1);
        this.messages++;
        this.startField();
        continue;
      }
      if (this.state === State.Tag || this.state === State.Length || this.state === State.Varint) {
        const byte = chunk[at++] as number;
        this.messageLeft--;
        this.varint += (byte & 0x7f) * this.scale;
        this.scale *= 128;
        if (byte >= 0x80) {
          if (this.messageLeft === 0) throw new Error('etcd sent a truncated snapshot message');
          continue;
        }
        const value = this.varint;
        this.varint = 0;
        this.scale = 1;
        this.onVarint(value);
        continue;
      }
      // Blob, Header or Skip: a run of bytes within the message.
      const take = Math.min(this.fieldLeft, chunk.length - at);
      const run = chunk.subarray(at, at + take);
      at += take;
      this.fieldLeft -= take;
      this.messageLeft -= take;
      if (this.state === State.Blob) this.push(run);
      else if (this.state === State.Header) this.header.push(Buffer.from(run));
      if (this.fieldLeft === 0) {
        if (this.state === State.Header) this.readHeader();
        this.startField();
      }
    }
  }

  private startField(): void {
    this.state = this.messageLeft === 0 ? State.Prefix : State.Tag;
  }

  private onVarint(value: number): void {
    if (this.state === State.Tag) {
      this.field = value;
      const type = value & 7;
      if (type === 0) this.state = State.Varint;
      else if (type === 2) this.state = State.Length;
      else throw new Error(`etcd sent a snapshot field of wire type ${type}, which this client does not read`);
      if (this.messageLeft === 0) throw new Error('etcd sent a truncated snapshot message');
      return;
    }
    if (this.state === State.Length) {
      if (value > this.messageLeft) throw new Error('etcd sent a truncated snapshot message');
      this.fieldLeft = value;
      const number = this.field >>> 3;
      this.state = number === 3 ? State.Blob : number === 1 && this.messages === 1 ? State.Header : State.Skip;
      // The header is the one field held in memory: four varints, never more than a few dozen bytes.
      if (this.state === State.Header && value > MAX_HEADER_BYTES) throw new Error(`etcd sent a snapshot header of ${value} bytes`);
      if (value === 0) this.startField();
      return;
    }
    // A varint field (remaining_bytes) is not needed: the trailer check proves the end.
    this.startField();
  }

  /** ResponseHeader{cluster_id 1, member_id 2, revision 3, raft_term 4}. */
  private readHeader(): void {
    const bytes = Buffer.concat(this.header);
    this.header = [];
    const header = new Wire(bytes, 0, bytes.length);
    while (header.more()) {
      const tag = header.varint();
      if (tag === 3 << 3) this.firstRevision = header.varint();
      else header.skip(tag);
    }
  }
}

const MAX_HEADER_BYTES = 1024;

/** Where the parser is: a message's 5-byte prefix, a field's tag, length or varint value, or a run of field bytes. */
const State = { Prefix: 0, Tag: 1, Length: 2, Varint: 3, Blob: 4, Header: 5, Skip: 6 } as const;
type State = (typeof State)[keyof typeof State];

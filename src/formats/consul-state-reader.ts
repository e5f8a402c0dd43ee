import type { Readable } from 'node:stream';
import { decode, ExtensionCodec } from '@msgpack/msgpack';
import { IntegrityError, oneLine } from '../util/errors.js';
import { archiveFailure, SnapshotArchive, type ConsulSnapshotMeta } from './consul-snapshot.js';
import { DEFAULT_MAX_INFLATED_BYTES, inflate } from './inflate.js';
import { DEFAULT_MAX_RECORD_BYTES, type ReaderLimits } from './limits.js';
import { MsgpackFramer } from './msgpack-framer.js';
import type { KvRecord } from './record.js';

/** Consul's raft message type for KV entries (agent/structs: KVSRequestType). */
const KVS = 2;
/** raft's SnapshotMeta version (SnapshotVersionMax), the only one Consul has written. */
const SNAPSHOT_VERSION = 1;

interface DirEntry {
  Key?: unknown;
  Value?: unknown;
  Flags?: unknown;
  CreateIndex?: unknown;
  ModifyIndex?: unknown;
}

/**
 * The KV entries inside a Consul snapshot (gzip(tar(meta.json, state.bin, SHA256SUMS))), read as the
 * archive streams: state.bin is a msgpack header followed by (type byte, msgpack value) records; type 2
 * records are KV entries, every other type is skipped undecoded. The gzip is inflated with a cap
 * (`limits.maxInflatedBytes`, also the most a tar member may declare), each record is capped
 * (`limits.maxRecordBytes`), and SHA256SUMS is checked on the way: the iteration fails at the end if it
 * does not match, if state.bin is empty or holds no records (Consul always writes some), or if
 * meta.json is not raft snapshot version 1. Anything that does not fit this layout is refused as
 * damaged or unknown, in one line (IntegrityError, exit 4); every failure settles the iteration.
 * Strings are read raw so values keep their bytes.
 */
export async function* readConsulSnapshotKv(
  input: Readable,
  label: string,
  onMeta?: (meta: ConsulSnapshotMeta | undefined) => void,
  limits: ReaderLimits = {},
): AsyncIterable<KvRecord> {
  const maxBytes = limits.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES;
  const state = new StateRecords(label, limits.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES);
  const archive = new SnapshotArchive(label, maxBytes, (chunk) => state.feed(chunk));
  const inflated = inflate(input, { gzip: true, maxBytes, label });
  try {
    // One pull loop: every chunk is parsed synchronously before the next is read, so a refusal is a
    // throw from here, and nothing is left waiting on an event that will not come.
    for await (const chunk of inflated) {
      archive.write(chunk as Buffer);
      yield* state.take();
    }
    const { meta } = archive.end(); // SHA256SUMS first: a tampered state.bin is reported as such
    state.end();
    yield* state.take();
    if (meta.Version !== SNAPSHOT_VERSION) {
      throw new IntegrityError(`${label}: meta.json says snapshot version ${String(meta.Version)}; kvdr reads raft snapshot version ${SNAPSHOT_VERSION} (unknown snapshot layout)`);
    }
    onMeta?.(meta);
  } catch (err) {
    if (!(err instanceof IntegrityError) && inflated.errored === err) throw err; // the file could not be read: not damage
    throw archiveFailure(label, err);
  } finally {
    inflated.destroy(); // a pass given up early still closes the file
  }
}

/**
 * Decodes state.bin as it arrives: a header map, then (type byte, value) pairs. Structural damage is
 * remembered rather than thrown, so that the archive is read on and a SHA256SUMS mismatch (which a
 * tampered state.bin causes) is what gets reported; `end` throws it otherwise.
 */
class StateRecords {
  private readonly framer: MsgpackFramer;
  private expect: 'header' | 'type' | 'record' = 'header';
  private type = 0;
  private records = 0;
  private queue: KvRecord[] = [];
  private failure: IntegrityError | undefined;

  constructor(
    private readonly label: string,
    private readonly maxRecordBytes: number,
  ) {
    this.framer = new MsgpackFramer((what) => this.undecodable(what), maxRecordBytes, (bytes, start) => this.value(bytes, start));
  }

  feed(chunk: Buffer): void {
    if (this.failure) return;
    try {
      this.framer.feed(chunk);
    } catch (err) {
      this.failure = err instanceof IntegrityError ? err : this.undecodable(oneLine(err));
      this.queue = [];
    }
  }

  /** The KV records decoded so far. */
  take(): KvRecord[] {
    const out = this.queue;
    this.queue = [];
    return out;
  }

  end(): void {
    if (this.failure) throw this.failure;
    if (!this.framer.atBoundary) throw this.undecodable(`it ends inside a msgpack value, after ${this.framer.position} bytes`);
    if (this.expect === 'header') throw this.damaged('is empty; a Consul snapshot always holds a header and records, this one is damaged');
    if (this.expect === 'record') throw this.damaged('ends after a type byte; the snapshot is damaged');
    if (this.records === 0) throw this.damaged('has a header but no records; Consul always writes records, this snapshot is damaged');
  }

  private value(bytes: Buffer | undefined, start: number): void {
    switch (this.expect) {
      case 'header':
        if (!isMap(this.decode(bytes, start))) throw this.damaged('does not start with a snapshot header; unknown snapshot layout');
        this.expect = 'type';
        break;
      case 'type':
        // Consul writes the type as one raw byte; every type it has is below 0x80, a msgpack fixint.
        if (!bytes || bytes.length !== 1 || (bytes[0] as number) >= 0x80) throw this.damaged(`has no record type byte at byte ${start}; unknown snapshot layout`);
        this.type = bytes[0] as number;
        this.expect = 'record';
        this.framer.keep = this.type === KVS; // other records are skipped undecoded
        break;
      case 'record':
        this.records++;
        if (this.type === KVS) {
          const entry = this.decode(bytes, start);
          if (!isMap(entry)) throw this.damaged(`has a KV record at byte ${start} that is not a map; unknown snapshot layout`);
          this.queue.push(this.toRecord(entry as DirEntry, start));
        }
        this.expect = 'type';
        this.framer.keep = true;
        break;
    }
  }

  /** A whole, framed value: every element it declares is present, so what decoding allocates is bounded by its size. */
  private decode(bytes: Buffer | undefined, start: number): unknown {
    const n = bytes?.length ?? 0;
    try {
      return decode(bytes ?? Buffer.alloc(0), {
        rawStrings: true,
        extensionCodec: RAW_EXTENSIONS,
        maxStrLength: n,
        maxBinLength: n,
        maxExtLength: n,
        maxArrayLength: n,
        maxMapLength: n,
      });
    } catch (err) {
      throw this.undecodable(`the value at byte ${start}: ${oneLine(err)}`);
    }
  }

  private toRecord(entry: DirEntry, start: number): KvRecord {
    const bytes = (v: unknown, field: string): Buffer => {
      if (v === null || v === undefined) return Buffer.alloc(0);
      if (typeof v === 'string') return Buffer.from(v, 'utf8');
      if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      throw this.damaged(`has a KV record at byte ${start} whose ${field} is neither text nor bytes; unknown snapshot layout`);
    };
    const count = (v: unknown, field: string): number | undefined => {
      if (v === undefined || v === null) return undefined;
      if ((typeof v === 'number' && Number.isInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n)) return Number(v);
      throw this.damaged(`has a KV record at byte ${start} whose ${field} is not a non-negative integer; unknown snapshot layout`);
    };
    if (entry.Key === undefined || entry.Key === null) throw this.damaged(`has a KV record at byte ${start} without a Key; unknown snapshot layout`);
    const createRevision = count(entry.CreateIndex, 'CreateIndex');
    const modRevision = count(entry.ModifyIndex, 'ModifyIndex');
    return {
      key: bytes(entry.Key, 'Key'),
      value: bytes(entry.Value, 'Value'),
      flags: count(entry.Flags, 'Flags') ?? 0,
      ...(createRevision !== undefined ? { createRevision } : {}),
      ...(modRevision !== undefined ? { modRevision } : {}),
    };
  }

  private damaged(what: string): IntegrityError {
    return new IntegrityError(`${this.label}: state.bin ${what}`);
  }

  private undecodable(why: string): IntegrityError {
    return this.damaged(`cannot be decoded (${why}); the snapshot is damaged or of an unknown layout`);
  }
}

function isMap(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

/**
 * Extension values stay raw bytes: the library's own timestamp decoder throws on lengths it does not
 * know, and a KV entry never holds an extension anyway.
 */
const RAW_EXTENSIONS = new ExtensionCodec();
RAW_EXTENSIONS.register({ type: -1, encode: () => null, decode: (data: Uint8Array) => data });

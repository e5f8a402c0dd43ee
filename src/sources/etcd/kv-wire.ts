import type { KvRecord } from '../../formats/record.js';
import { field as bytesField, message as lengthField } from './request-size.js';

/**
 * The two etcd KV calls a restore makes in bulk (Txn of puts, Range), as protobuf bytes: building a
 * million request objects and mapping every key read back to an object was a third of a restore's
 * client CPU. Only what these calls need of rpc.proto and kv.proto.
 */
// Protobuf, as far as these two calls need it (rpc.proto, kv.proto): length-delimited fields are
// tag (field << 3 | 2), varint length, bytes; varint fields are tag (field << 3), varint.

/** TxnRequest{success: [RequestOp{request_put: PutRequest{key, value}}]}; an empty field is left out, as proto3 does. */
export function encodeTxn(records: readonly KvRecord[]): Buffer {
  let size = 0;
  for (const r of records) size += lengthField(lengthField(bytesField(r.key.length) + bytesField(r.value.length)));
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const r of records) {
    const put = bytesField(r.key.length) + bytesField(r.value.length);
    at = writeTag(out, at, 2, lengthField(put)); // TxnRequest.success: one RequestOp
    at = writeTag(out, at, 2, put); // RequestOp.request_put
    at = writeBytes(out, at, 1, r.key);
    at = writeBytes(out, at, 2, r.value);
  }
  return out;
}

/** RangeRequest{key, range_end, limit, revision} (revision 0: the newest). */
export function encodeRange(key: Buffer, end: Buffer, limit: number, revision: number): Buffer {
  const out = Buffer.allocUnsafe(bytesField(key.length) + bytesField(end.length) + 2 * (1 + 10));
  let at = writeBytes(out, 0, 1, key);
  at = writeBytes(out, at, 2, end);
  out[at++] = 3 << 3;
  at = writeVarint(out, at, limit);
  if (revision > 0) {
    out[at++] = 4 << 3;
    at = writeVarint(out, at, revision);
  }
  return out.subarray(0, at);
}

export interface RangePage {
  kvs: KvRecord[];
  more: boolean;
  revision: number;
  /** Key and value bytes of the page, for sizing the next. */
  bytes: number;
}

/**
 * RangeResponse{header: {revision: 3}, kvs: [KeyValue{key 1, create_revision 2, mod_revision 3,
 * version 4, value 5, lease 6}], more: 3}. Keys and values are views of the response, not copies.
 */
export function decodeRange(buffer: Buffer): RangePage {
  const page: RangePage = { kvs: [], more: false, revision: 0, bytes: 0 };
  const reader = new Wire(buffer, 0, buffer.length);
  while (reader.more()) {
    const tag = reader.varint();
    if (tag === ((1 << 3) | 2)) {
      const header = reader.sub();
      while (header.more()) {
        const t = header.varint();
        if (t === 3 << 3) page.revision = header.varint();
        else header.skip(t);
      }
    } else if (tag === ((2 << 3) | 2)) {
      const kv = reader.sub();
      const record: KvRecord = { key: EMPTY, value: EMPTY, lease: '0', createRevision: 0, modRevision: 0, version: 0 };
      while (kv.more()) {
        const t = kv.varint();
        if (t === ((1 << 3) | 2)) record.key = kv.bytes();
        else if (t === ((5 << 3) | 2)) record.value = kv.bytes();
        else if (t === 2 << 3) record.createRevision = kv.varint();
        else if (t === 3 << 3) record.modRevision = kv.varint();
        else if (t === 4 << 3) record.version = kv.varint();
        else if (t === 6 << 3) record.lease = kv.int64();
        else kv.skip(t);
      }
      page.bytes += record.key.length + record.value.length + 32;
      page.kvs.push(record);
    } else if (tag === 3 << 3) page.more = reader.varint() !== 0;
    else reader.skip(tag);
  }
  return page;
}

const EMPTY = Buffer.alloc(0);

/** A cursor over protobuf bytes (also reads the snapshot stream's response header). */
export class Wire {
  constructor(
    private readonly buffer: Buffer,
    private at: number,
    private readonly end: number,
  ) {}

  more(): boolean {
    return this.at < this.end;
  }

  /** A varint as a number (exact below 2^53: revisions, versions, lengths). */
  varint(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.at >= this.end) throw new Error('etcd sent a truncated message');
      const byte = this.buffer[this.at++] as number;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
    }
  }

  /** An int64 varint as its exact decimal text (lease ids use all 64 bits). */
  int64(): string {
    let value = 0n;
    let shift = 0n;
    for (;;) {
      if (this.at >= this.end) throw new Error('etcd sent a truncated message');
      const byte = this.buffer[this.at++] as number;
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return BigInt.asIntN(64, value).toString();
      shift += 7n;
    }
  }

  bytes(): Buffer {
    const length = this.varint();
    if (this.at + length > this.end) throw new Error('etcd sent a truncated message');
    this.at += length;
    return this.buffer.subarray(this.at - length, this.at);
  }

  sub(): Wire {
    const length = this.varint();
    if (this.at + length > this.end) throw new Error('etcd sent a truncated message');
    this.at += length;
    return new Wire(this.buffer, this.at - length, this.at);
  }

  skip(tag: number): void {
    const type = tag & 7;
    if (type === 0) this.varint();
    else if (type === 2) this.at += this.varint();
    else if (type === 1) this.at += 8;
    else if (type === 5) this.at += 4;
    else throw new Error(`etcd sent a field of wire type ${type}, which this client does not read`);
  }
}


function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 128) {
    out[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[at++] = n;
  return at;
}

function writeTag(out: Buffer, at: number, field: number, length: number): number {
  out[at++] = (field << 3) | 2;
  return writeVarint(out, at, length);
}

function writeBytes(out: Buffer, at: number, field: number, bytes: Buffer): number {
  if (bytes.length === 0) return at;
  at = writeTag(out, at, field, bytes.length);
  bytes.copy(out, at);
  return at + bytes.length;
}

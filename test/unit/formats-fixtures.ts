import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { constants, deflateRawSync, gzipSync } from 'node:zlib';
import { encode } from '@msgpack/msgpack';
import { Header } from 'tar';

/**
 * Builders for the format tests: Consul snapshots made the way Consul writes them (gzip(tar(meta.json,
 * state.bin, SHA256SUMS)), state.bin = msgpack header + (type byte, msgpack value) records, []byte
 * written as msgpack str), gzip bombs, and stream helpers.
 */

/** A stream of `data` in chunks of `size` bytes. */
export function chunked(data: Buffer, size = 4096): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

/** Fails with "hang" if the promise does not settle within `ms`. */
export async function settles<T>(promise: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** One tar member: 512-byte header (encoded by the tar library) + data padded to 512. */
export function tarMember(path: string, data: Buffer, extra: { type?: 'File' | 'SymbolicLink' | 'Directory' | 'Link'; size?: number; linkpath?: string } = {}): Buffer {
  const header = new Header({ path, mode: 0o600, size: extra.size ?? data.length, type: extra.type ?? 'File', mtime: new Date(0), uid: 0, gid: 0, ...(extra.linkpath ? { linkpath: extra.linkpath } : {}) });
  header.encode();
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header.block as Buffer, data, pad]);
}

export function tarOf(members: Buffer[]): Buffer {
  return Buffer.concat([...members, Buffer.alloc(1024)]);
}

/** msgpack str holding raw bytes, as Consul's codec writes a []byte. */
export function msgpackStr(bytes: Buffer): Buffer {
  const n = bytes.length;
  const head = n < 32 ? Buffer.from([0xa0 | n]) : n < 256 ? Buffer.from([0xd9, n]) : n < 65536 ? Buffer.from([0xda, n >> 8, n & 0xff]) : Buffer.from([0xdb, 0, 0, 0, 0]);
  if (n >= 65536) head.writeUInt32BE(n, 1);
  return Buffer.concat([head, bytes]);
}

/** A fixmap/map16 of string keys to pre-encoded values. */
export function msgpackMap(fields: [string, Buffer][]): Buffer {
  const n = fields.length;
  const head = n < 16 ? Buffer.from([0x80 | n]) : Buffer.from([0xde, n >> 8, n & 0xff]);
  return Buffer.concat([head, ...fields.flatMap(([k, v]) => [Buffer.from(encode(k)), v])]);
}

export interface SnapshotKv {
  key: Buffer;
  value: Buffer;
  flags?: number;
  createIndex?: number;
  modifyIndex?: number;
}

/** A DirEntry as Consul's codec writes it: LockIndex, Key, Flags, Value, Session, CreateIndex, ModifyIndex. */
export function dirEntry(kv: SnapshotKv): Buffer {
  return msgpackMap([
    ['LockIndex', Buffer.from(encode(0))],
    ['Key', msgpackStr(kv.key)],
    ['Flags', Buffer.from(encode(kv.flags ?? 0))],
    ['Value', msgpackStr(kv.value)],
    ['Session', msgpackStr(Buffer.alloc(0))],
    ['CreateIndex', Buffer.from(encode(kv.createIndex ?? 1))],
    ['ModifyIndex', Buffer.from(encode(kv.modifyIndex ?? 1))],
  ]);
}

export interface StateOptions {
  /** Non-KV records (type 0 Register, 5 Tombstone, 16 Index) interleaved, as a real snapshot has. */
  others?: boolean;
  lastIndex?: number;
}

/** state.bin: header, then records. */
export function stateBin(kvs: SnapshotKv[], options: StateOptions = {}): Buffer {
  const parts: Buffer[] = [Buffer.from(encode({ LastIndex: options.lastIndex ?? 42 }))];
  const record = (type: number, value: Buffer | Uint8Array): void => {
    parts.push(Buffer.from([type]), Buffer.from(value));
  };
  if (options.others !== false) {
    record(0, encode({ Node: 'node-1', Address: '127.0.0.1', Service: { ID: 'consul', Tags: ['a', 'b'], Meta: { x: '1' } }, Checks: [[1, 2], { c: [3] }] }));
  }
  for (const kv of kvs) record(2, dirEntry(kv));
  if (options.others !== false) {
    record(5, msgpackMap([['Key', msgpackStr(Buffer.from('deleted/key'))], ['Index', Buffer.from(encode(7))]]));
    record(16, encode({ Key: 'kvs', Value: 99 }));
  }
  return Buffer.concat(parts);
}

export interface ArchiveOptions {
  meta?: Record<string, unknown>;
  /** Extra members after the usual three. */
  extra?: Buffer[];
  /** Replace SHA256SUMS content. */
  sums?: Buffer;
}

/** The tar (not gzipped) of a snapshot whose state.bin is `state`. */
export function snapshotTar(state: Buffer, options: ArchiveOptions = {}): Buffer {
  const meta = Buffer.from(JSON.stringify(options.meta ?? { Version: 1, ID: '2-42-1700000000000', Index: 42, Term: 2, Size: state.length }));
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const sums = options.sums ?? Buffer.from(`${sha(state)}  state.bin\n${sha(meta)}  meta.json\n`);
  return tarOf([tarMember('meta.json', meta), tarMember('state.bin', state), tarMember('SHA256SUMS', sums), ...(options.extra ?? [])]);
}

export function consulSnapshot(kvs: SnapshotKv[], options: StateOptions & ArchiveOptions = {}): Buffer {
  return gzipSync(snapshotTar(stateBin(kvs, options), options));
}

/**
 * A gzip stream that inflates to `segments` × 100 MiB of zeros from about 100 KiB each: one deflate
 * segment of zeros, sync-flushed so it ends on a byte boundary, repeated (its back-references only
 * ever reach zeros). The trailer is not valid: a reader must stop long before it.
 */
export function gzipBomb(segments: number): Buffer {
  const segment = deflateRawSync(Buffer.alloc(100 * 1024 ** 2), { finishFlush: constants.Z_SYNC_FLUSH, level: 9 });
  const header = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
  return Buffer.concat([header, ...Array.from({ length: segments }, () => segment), Buffer.from([0x03, 0x00]), Buffer.alloc(8)]);
}

import type { Readable } from 'node:stream';
import { decodeMultiStream } from '@msgpack/msgpack';
import { Parser, type ReadEntry } from 'tar';
import { IntegrityError } from '../util/errors.js';
import { verifyConsulSnapshot, type ConsulSnapshotMeta } from './consul-snapshot.js';
import type { KvRecord } from './record.js';

/** Consul's raft message type for KV entries (agent/structs: KVSRequestType). */
const KVS = 2;
/** raft's SnapshotMeta version (SnapshotVersionMax), the only one Consul has written. */
const SNAPSHOT_VERSION = 1;

interface DirEntry {
  Key?: Uint8Array | string;
  Value?: Uint8Array | string | null;
  Flags?: number | bigint;
  CreateIndex?: number | bigint;
  ModifyIndex?: number | bigint;
}

/**
 * The KV entries inside a Consul snapshot (gzip(tar(meta.json, state.bin, SHA256SUMS))), read as the
 * archive streams: state.bin is a msgpack header followed by (type byte, msgpack value) records; type 2
 * records are KV entries, every other type is skipped. SHA256SUMS is checked on the way, and the
 * iteration fails at the end if it does not match, or if meta.json is not raft snapshot version 1;
 * anything else that does not fit this layout is refused as damaged or unknown (all exit 4). Strings
 * are read raw so values keep their bytes.
 */
export async function* readConsulSnapshotKv(input: Readable, label: string, onMeta?: (meta: ConsulSnapshotMeta | undefined) => void): AsyncIterable<KvRecord> {
  const check = verifyConsulSnapshot(label);
  let resolveEntry: (entry: ReadEntry | undefined) => void = () => undefined;
  const stateBin = new Promise<ReadEntry | undefined>((resolve) => (resolveEntry = resolve));
  const parser = new Parser({
    maxDecompressionRatio: Number.POSITIVE_INFINITY,
    onReadEntry: (entry: ReadEntry) => {
      if (entry.path === 'state.bin') resolveEntry(entry);
      else entry.resume();
    },
  });
  const finished = new Promise<void>((resolve, reject) => {
    check.on('error', reject);
    input.on('error', reject);
    parser.on('error', reject);
    parser.on('end', resolve);
    parser.on('close', resolve);
  });
  finished.then(() => resolveEntry(undefined), () => resolveEntry(undefined));
  input.pipe(check).on('data', (chunk: Buffer) => {
    if (!parser.write(chunk)) check.pause();
  });
  parser.on('drain', () => check.resume());
  check.on('end', () => parser.end());

  // The archive's own check (members, SHA256SUMS, meta.json), once the whole stream has been read.
  const verdict = (): Promise<void> =>
    finished.catch((err: unknown) => {
      throw err instanceof IntegrityError ? err : new IntegrityError(`${label}: not a Consul snapshot (${(err as Error).message})`);
    });
  try {
    yield* stateRecords(await stateBin, verdict, label);
    await verdict();
  } finally {
    input.destroy(); // a pass given up early still closes the file
  }
  const meta = check.meta();
  if (meta?.Version !== SNAPSHOT_VERSION) {
    throw new IntegrityError(`${label}: meta.json says snapshot version ${String(meta?.Version)}; kvdr reads raft snapshot version ${SNAPSHOT_VERSION} (unknown snapshot layout)`);
  }
  onMeta?.(meta);
}

/** The KV entries of state.bin: a msgpack header, then (type byte, msgpack value) pairs. */
async function* stateRecords(entry: ReadEntry | undefined, verdict: () => Promise<void>, label: string): AsyncIterable<KvRecord> {
  if (!entry) {
    await verdict();
    throw new IntegrityError(`${label}: the archive has no state.bin; it is not a Consul snapshot`);
  }
  let first = true;
  let type: number | undefined;
  try {
    for await (const value of decodeMultiStream<undefined>(entry, { rawStrings: true })) {
      if (first) {
        first = false;
        if (!isMap(value)) throw new IntegrityError(`${label}: state.bin does not start with a snapshot header; unknown snapshot layout`);
        continue;
      }
      if (type === undefined) {
        if (typeof value !== 'number') throw new IntegrityError(`${label}: state.bin has a record without a type byte; unknown snapshot layout`);
        type = value;
        continue;
      }
      if (type === KVS) {
        if (!isMap(value)) throw new IntegrityError(`${label}: a KV record of state.bin is not a map; unknown snapshot layout`);
        yield toRecord(value as DirEntry, label);
      }
      type = undefined;
    }
    if (type !== undefined) throw new IntegrityError(`${label}: state.bin ends after a type byte; the snapshot is damaged`);
  } catch (err) {
    // A tampered archive often fails to decode before its end is reached: read on, so that a
    // SHA256SUMS mismatch is what is reported, rather than a decoding error it caused.
    entry.resume();
    await verdict();
    if (err instanceof IntegrityError) throw err;
    throw new IntegrityError(`${label}: state.bin cannot be decoded (${(err as Error).message}); the snapshot is damaged or of an unknown layout`);
  }
}

function isMap(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function toRecord(entry: DirEntry, label: string): KvRecord {
  const bytes = (v: Uint8Array | string | null | undefined): Buffer =>
    v === null || v === undefined ? Buffer.alloc(0) : typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (entry.Key === undefined) throw new IntegrityError(`${label}: a KV entry without a Key; unknown snapshot layout`);
  return {
    key: bytes(entry.Key),
    value: bytes(entry.Value),
    flags: Number(entry.Flags ?? 0),
    ...(entry.CreateIndex !== undefined ? { createRevision: Number(entry.CreateIndex) } : {}),
    ...(entry.ModifyIndex !== undefined ? { modRevision: Number(entry.ModifyIndex) } : {}),
  };
}

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { compressionOf } from '../formats/compression.js';
import { readConsulExport } from '../formats/consul-export-reader.js';
import { readConsulSnapshotKv } from '../formats/consul-state-reader.js';
import { openEtcdSnapshot, type EtcdSnapshotFile } from '../formats/etcd-snapshot-reader.js';
import { verifySnapshotTrailer } from '../formats/etcd-snapshot.js';
import { DEFAULT_MAX_INFLATED_BYTES, inflate, zstdAvailable, zstdUnavailable, type Compression } from '../formats/inflate.js';
import { readKvdrExport } from '../formats/kvdr-export-reader.js';
import { readPxDump } from '../formats/px-dump.js';
import type { KvRecord } from '../formats/record.js';
import { IntegrityError, UsageError } from '../util/errors.js';
import type { ArtifactFormat, LocalArtifact } from './artifact.js';
import { offThreadAvailable, recordsOffThread } from './off-thread.js';

export interface OpenOptions {
  /**
   * Read the records of a streamed format (kvdr export, PX dump, `consul kv export`) on a worker
   * thread (see off-thread.ts): for a pass whose consumer has work of its own per record, as a
   * restore's plan does. Snapshots are read here (their readers keep random-access state between passes).
   * @defaultValue false
   */
  offThread?: boolean;
}

const STREAMED: ReadonlySet<ArtifactFormat> = new Set(['etcd-export', 'px-dump', 'consul-export']);

/** An artifact opened for any number of passes over its records. */
export interface ArtifactReader {
  readonly artifact: LocalArtifact;
  /**
   * A fresh pass over the records. `prefix` lets a native-snapshot reader skip keys early (it
   * indexes the keys it may yield); other formats are filtered by the caller.
   */
  records(prefix?: Buffer): AsyncIterable<KvRecord>;
  /** The etcd revision or Consul raft index the artifact records, once a pass has read it to the end. */
  origin(): { revision?: number; index?: number };
  /** Closes the file and removes any temp copy; safe to call twice (a later pass would start afresh). */
  close(): Promise<void>;
}

/**
 * Opens an artifact for several passes (a restore plans, then replays). What opening costs is paid
 * once, on the first pass: a compressed etcd snapshot is inflated into a private temp file, checking
 * its trailer on the way, and the same open snapshot serves every later pass until `close`.
 */
export function openArtifact(artifact: LocalArtifact, options: OpenOptions = {}): ArtifactReader {
  const limits = { maxInflatedBytes: capOf(artifact) };
  let snapshot: Promise<{ file: EtcdSnapshotFile; dir?: string }> | undefined;
  let revision: number | undefined;
  let index: number | undefined;
  const etcdSnapshot = (): Promise<{ file: EtcdSnapshotFile; dir?: string }> => (snapshot ??= openNativeSnapshot(artifact));

  function records(prefix?: Buffer): AsyncIterable<KvRecord> {
    if (options.offThread && STREAMED.has(artifact.format) && offThreadAvailable()) {
      return recordsOffThread(artifact, prefix, (origin) => {
        revision = origin.revision ?? revision;
        index = origin.index ?? index;
      });
    }
    // The format readers' own iterators, opened when the pass starts: no wrapping generator adds a
    // turn of the event loop to each of a million records.
    return { [Symbol.asyncIterator]: () => open(prefix)[Symbol.asyncIterator]() };
  }

  function open(prefix?: Buffer): AsyncIterable<KvRecord> {
    switch (artifact.format) {
      case 'etcd-snapshot':
        return snapshotRecords(prefix);
      case 'consul-snapshot':
        return readConsulSnapshotKv(createReadStream(artifact.path), artifact.label, (meta) => (index = meta?.Index), limits);
      case 'etcd-export':
        return readKvdrExport(inflated(artifact), artifact.label, limits, (header) => (revision = header.revision)).records;
      case 'px-dump':
        return readPxDump(inflated(artifact), artifact.label, limits);
      case 'consul-export':
        return readConsulExport(inflated(artifact), artifact.label, limits);
    }
  }

  async function* snapshotRecords(prefix?: Buffer): AsyncIterable<KvRecord> {
    const { file } = await etcdSnapshot();
    yield* file.records(prefix);
    revision = file.revision();
  }

  return {
    artifact,
    records,
    origin: () => ({ ...(revision !== undefined ? { revision } : {}), ...(index !== undefined ? { index } : {}) }),
    close: async () => {
      const opened = await snapshot?.catch(() => undefined);
      snapshot = undefined;
      await opened?.file.close();
      if (opened?.dir) await rm(opened.dir, { recursive: true, force: true });
    },
  };
}

function capOf(artifact: LocalArtifact): number {
  return artifact.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES;
}

/**
 * The file's bytes, inflated on the fly when it is compressed, never more than the artifact's cap. Read
 * in 256 KiB chunks: a pass over a large export is a long run of small records, and every chunk
 * costs a turn of the event loop.
 */
export function inflated(artifact: LocalArtifact): Readable {
  return inflate(createReadStream(artifact.path, { highWaterMark: 256 * 1024 }), { compression: artifact.compression, maxBytes: capOf(artifact), label: artifact.label });
}

/**
 * bbolt needs random access: a compressed snapshot is inflated into a private temp file, its trailer
 * checked in the same pass so the copy is never read twice. A failed inflation leaves nothing behind.
 */
async function openNativeSnapshot(artifact: LocalArtifact): Promise<{ file: EtcdSnapshotFile; dir?: string }> {
  if (artifact.compression === 'none') return { file: await openEtcdSnapshot(artifact.path, artifact.label) };
  const dir = await mkdtemp(join(tmpdir(), 'kvdr-snapshot-'));
  try {
    const path = join(dir, 'snapshot.db');
    const check = verifySnapshotTrailer(artifact.label, 'nothing was read from it');
    await pipeline(inflated(artifact), check, createWriteStream(path, { mode: 0o600 }));
    return { file: await openEtcdSnapshot(path, artifact.label, { trailerVerified: true }), dir };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The header prefix of a kvdr export: the scope its keys were taken from. */
export async function exportScope(artifact: LocalArtifact): Promise<string> {
  const input = inflated(artifact);
  try {
    const header = await readKvdrExport(input, artifact.label).header();
    return Buffer.from(header.prefix, 'base64').toString('utf8');
  } finally {
    input.destroy();
  }
}

/** Tells an artifact's format from its first bytes, as `--file` promises. */
export async function sniffArtifact(path: string, maxInflatedBytes?: number, expected?: 'px-dump'): Promise<LocalArtifact> {
  const label = basename(path);
  const cap = maxInflatedBytes === undefined ? {} : { maxInflatedBytes };
  let head: Buffer;
  try {
    // Only a regular file: a FIFO would block the read forever, a device would never end.
    const info = await stat(path);
    if (info.isDirectory()) throw new UsageError(`${path}: is a directory; name the artifact file inside it`);
    if (!info.isFile()) throw new UsageError(`${path}: is not a regular file (a device, FIFO or socket); copy the artifact to a file first`);
    const handle = await open(path, 'r');
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(64 * 1024), 0, 64 * 1024, 0);
      head = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${path}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? String(err)})`}`);
  }
  if (head.length === 0) throw new IntegrityError(`${label}: the file is empty; it holds no artifact`);
  const compression: Compression = compressionOf(head);
  let content = head;
  if (compression === 'gzip') {
    try {
      // A prefix of the stream is enough to recognise the content.
      content = zlib.gunzipSync(head, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: 1024 * 1024 });
    } catch {
      throw new IntegrityError(`${label}: starts like gzip but does not decompress; the file is damaged`);
    }
    if (content.subarray(0, 512).includes(Buffer.from('meta.json')) || content.subarray(0, 512).includes(Buffer.from('state.bin'))) {
      return { path, format: 'consul-snapshot', compression: 'none', label, ...cap };
    }
  } else if (compression === 'zstd') {
    content = await zstdPrefix(path, label);
  }
  if (content.length >= 20 && content.readUInt32LE(16) === 0xed0cdaed) return { path, format: 'etcd-snapshot', compression, label, ...cap };
  const text = content.toString('utf8').trimStart();
  if (text.startsWith('{"format":"kvdr-export"')) return { path, format: 'etcd-export', compression, label, ...cap };
  if (text.startsWith('[')) {
    const firstKey = /"(Key|key)"\s*:/.exec(text)?.[1];
    // An empty array (`[]`) is both an empty PX dump and an empty consul kv export: the caller's word decides.
    const format = firstKey === 'Key' || (firstKey === undefined && expected === 'px-dump') ? 'px-dump' : 'consul-export';
    return { path, format, compression, label, ...cap };
  }
  // Go marshals a nil slice as `null`: the dump of an empty keyspace.
  if (expected === 'px-dump' && text.trimEnd() === 'null') return { path, format: 'px-dump', compression, label, ...cap };
  throw new UsageError(`${label}: not an artifact kvdr can restore (a PX dump, a kvdr or consul kv export, or a snapshot)`);
}

/** The first four bytes of every zstd frame (0xFD2FB528 little-endian). */

/**
 * The first 64 KiB a zstd file inflates to: enough to recognise the content. Node has no zstd
 * equivalent of gunzip's sync flush over a prefix, so this reads the file through `inflate` (capped)
 * and stops as soon as it has enough; a file that fails before its first inflated byte is refused
 * with inflate's own one line (truncated, corrupt, not zstd).
 */
async function zstdPrefix(path: string, label: string): Promise<Buffer> {
  if (!zstdAvailable()) throw zstdUnavailable(label);
  const input = inflate(createReadStream(path), { compression: 'zstd', maxBytes: DEFAULT_MAX_INFLATED_BYTES, label });
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of input) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= 64 * 1024) break;
    }
  } catch (err) {
    // Damage past the first bytes is for the restore to report, after it has read that far.
    if (err instanceof IntegrityError && size > 0) return Buffer.concat(chunks);
    if (err instanceof IntegrityError) throw err;
    throw new IntegrityError(`${label}: starts like zstd but does not decompress (${String(err)}); the file is damaged`, { cause: err });
  } finally {
    input.destroy();
  }
  return Buffer.concat(chunks);
}

import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants, createGunzip, gunzipSync } from 'node:zlib';
import { readConsulExport } from '../formats/consul-export-reader.js';
import { readConsulSnapshotKv } from '../formats/consul-state-reader.js';
import { openEtcdSnapshot } from '../formats/etcd-snapshot-reader.js';
import { readKvdrExport } from '../formats/kvdr-export-reader.js';
import { readPxDump } from '../formats/px-dump.js';
import type { KvRecord } from '../formats/record.js';
import { KvdrError, UsageError } from '../util/errors.js';

export type ArtifactFormat = 'px-dump' | 'etcd-export' | 'consul-export' | 'etcd-snapshot' | 'consul-snapshot';

/** A restorable artifact on local disk: a user's file, or a backup spooled from the repository. */
export interface LocalArtifact {
  path: string;
  format: ArtifactFormat;
  gzip: boolean;
  /** For messages: the file name or backup id. */
  label: string;
}

/**
 * Reads an artifact's records from the start; each call is a fresh pass over the file. `prefix`
 * lets a native-snapshot reader skip keys early (it indexes the keys it may yield); other formats
 * are filtered by the caller.
 */
export function openRecords(artifact: LocalArtifact, prefix?: Buffer): AsyncIterable<KvRecord> {
  if (artifact.format === 'etcd-snapshot') return etcdSnapshotRecords(artifact, prefix);
  if (artifact.format === 'consul-snapshot') return readConsulSnapshotKv(createReadStream(artifact.path), artifact.label);
  const raw = createReadStream(artifact.path);
  const input: Readable = artifact.gzip ? raw.pipe(createGunzip()) : raw;
  if (artifact.gzip) raw.on('error', (err) => input.destroy(err));
  switch (artifact.format) {
    case 'px-dump':
      return readPxDump(input, artifact.label);
    case 'consul-export':
      return readConsulExport(input, artifact.label);
    case 'etcd-export':
      return readKvdrExport(input, artifact.label).records;
  }
}

/** bbolt needs random access: a gzipped snapshot is first inflated into a private temp file. */
async function* etcdSnapshotRecords(artifact: LocalArtifact, prefix: Buffer | undefined): AsyncIterable<KvRecord> {
  let path = artifact.path;
  let dir: string | undefined;
  if (artifact.gzip) {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-snapshot-'));
    path = join(dir, 'snapshot.db');
    await pipeline(createReadStream(artifact.path), createGunzip(), createWriteStream(path, { mode: 0o600 }));
  }
  try {
    const snapshot = await openEtcdSnapshot(path, artifact.label);
    try {
      yield* snapshot.records(prefix);
    } finally {
      await snapshot.close();
    }
  } finally {
    if (dir) await rm(dir, { recursive: true, force: true });
  }
}

/** The header prefix of a kvdr export: the scope its keys were taken from. */
export async function exportScope(artifact: LocalArtifact): Promise<string> {
  const raw = createReadStream(artifact.path);
  const input: Readable = artifact.gzip ? raw.pipe(createGunzip()) : raw;
  try {
    const header = await readKvdrExport(input, artifact.label).header();
    return Buffer.from(header.prefix, 'base64').toString('utf8');
  } finally {
    raw.destroy();
    input.destroy();
  }
}

/** Tells an artifact's format from its first bytes, as `--file` promises. */
export async function sniffArtifact(path: string): Promise<LocalArtifact> {
  const label = basename(path);
  let head: Buffer;
  try {
    const handle = await open(path, 'r');
    try {
      const { buffer, bytesRead } = await handle.read(Buffer.alloc(64 * 1024), 0, 64 * 1024, 0);
      head = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${path}: ${code === 'ENOENT' ? 'no such file' : `cannot read (${code ?? String(err)})`}`);
  }
  const gzip = head[0] === 0x1f && head[1] === 0x8b;
  let content = head;
  if (gzip) {
    try {
      // A prefix of the stream is enough to recognise the content.
      content = gunzipSync(head, { finishFlush: constants.Z_SYNC_FLUSH });
    } catch {
      throw new KvdrError(`${label}: starts like gzip but does not decompress`);
    }
    if (content.subarray(0, 512).includes(Buffer.from('meta.json')) || content.subarray(0, 512).includes(Buffer.from('state.bin'))) {
      return { path, format: 'consul-snapshot', gzip: false, label };
    }
  }
  if (content.readUInt32LE(16) === 0xed0cdaed) return { path, format: 'etcd-snapshot', gzip, label };
  const text = content.toString('utf8').trimStart();
  if (text.startsWith('{"format":"kvdr-export"')) return { path, format: 'etcd-export', gzip, label };
  if (text.startsWith('[')) {
    const firstKey = /"(Key|key)"\s*:/.exec(text)?.[1];
    return { path, format: firstKey === 'Key' ? 'px-dump' : 'consul-export', gzip, label };
  }
  throw new UsageError(`${label}: not an artifact kvdr can restore (a PX dump, a kvdr or consul kv export, or a snapshot)`);
}

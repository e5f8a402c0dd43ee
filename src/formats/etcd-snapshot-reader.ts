import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { IntegrityError } from '../util/errors.js';
import { walkBucket, topLevelBucket, type BucketRoot } from './bbolt/bucket-walker.js';
import { PageFile } from './bbolt/page-file.js';
import { SNAPSHOT_TRAILER_BYTES } from './etcd-snapshot.js';
import type { KvRecord } from './record.js';

export interface EtcdSnapshotFile {
  /** The highest revision in the snapshot. */
  revision(): number;
  /**
   * The live keys under a prefix — the newest revision of each, deleted keys dropped — in revision
   * order. Two passes over the key bucket: the first remembers, per key, which revision is newest;
   * the second yields those. Memory holds that index of keys, never values.
   */
  records(prefix?: Buffer): AsyncIterable<KvRecord>;
  close(): Promise<void>;
}

/**
 * Opens an etcd snapshot as stored (bbolt database + etcd's 32-byte sha256 trailer), after checking
 * the trailer: a file whose hash does not match is refused (exit 4) before anything reads it.
 */
export async function openEtcdSnapshot(path: string, label: string): Promise<EtcdSnapshotFile> {
  const file = await open(path, 'r');
  try {
    const size = (await file.stat()).size;
    if (size % 512 !== SNAPSHOT_TRAILER_BYTES) {
      throw new IntegrityError(`${label}: ${size} bytes is not a bbolt database plus etcd's 32-byte sha256 trailer; the file is truncated or not an etcd snapshot`);
    }
    const dataBytes = size - SNAPSHOT_TRAILER_BYTES;
    await checkTrailer(path, file, dataBytes, label);
    const pages = await PageFile.open(file, dataBytes, label);
    const keyBucket = await topLevelBucket(pages, 'key', label);
    if (!keyBucket) throw new IntegrityError(`${label}: the database has no "key" bucket; it is not an etcd snapshot`);
    let highest = 0;
    return {
      revision: () => highest,
      records: (prefix = Buffer.alloc(0)) => liveRecords(pages, keyBucket, prefix, label, (r) => (highest = Math.max(highest, r))),
      close: () => file.close(),
    };
  } catch (err) {
    await file.close();
    throw err;
  }
}

async function* liveRecords(pages: PageFile, bucket: BucketRoot, prefix: Buffer, label: string, seen: (revision: number) => void): AsyncIterable<KvRecord> {
  const newest = new Map<string, string>(); // key (latin1) → revision key (latin1) of its newest entry, '' once deleted
  for await (const entry of walkBucket(pages, bucket, label)) {
    const kv = decodeKeyValue(entry.value, label);
    seen(Number(entry.key.readBigUInt64BE(0)));
    if (!startsWith(kv.key, prefix)) continue;
    newest.set(kv.key.toString('latin1'), entry.key.length === 18 && entry.key[17] === 0x74 /* 't' */ ? '' : entry.key.toString('latin1'));
  }
  for await (const entry of walkBucket(pages, bucket, label)) {
    const kv = decodeKeyValue(entry.value, label);
    if (!startsWith(kv.key, prefix)) continue;
    if (newest.get(kv.key.toString('latin1')) !== entry.key.toString('latin1')) continue;
    yield kv;
  }
}

/** mvccpb.KeyValue: 1 key, 2 create_revision, 3 mod_revision, 4 version, 5 value, 6 lease. */
export function decodeKeyValue(bytes: Buffer, label: string): Required<Pick<KvRecord, 'key' | 'value' | 'lease' | 'createRevision' | 'modRevision' | 'version'>> {
  const out: { key: Buffer; value: Buffer; lease: string; createRevision: number; modRevision: number; version: number } = {
    key: Buffer.alloc(0),
    value: Buffer.alloc(0),
    lease: '0',
    createRevision: 0,
    modRevision: 0,
    version: 0,
  };
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; at < bytes.length; shift += 7n) {
      const b = bytes[at++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
    }
    throw new IntegrityError(`${label}: a KeyValue record ends inside a number; the snapshot is damaged`);
  };
  while (at < bytes.length) {
    const tag = Number(varint());
    const field = tag >> 3;
    const wire = tag & 7;
    if (wire === 2) {
      const length = Number(varint());
      const data = bytes.subarray(at, at + length);
      at += length;
      if (field === 1) out.key = data;
      else if (field === 5) out.value = data;
    } else if (wire === 0) {
      const n = varint();
      if (field === 2) out.createRevision = Number(n);
      else if (field === 3) out.modRevision = Number(n);
      else if (field === 4) out.version = Number(n);
      else if (field === 6) out.lease = BigInt.asIntN(64, n).toString();
    } else {
      throw new IntegrityError(`${label}: a KeyValue record has wire type ${wire}; the snapshot is damaged or from an unknown etcd`);
    }
  }
  return out;
}

function startsWith(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && prefix.compare(key, 0, prefix.length) === 0;
}

async function checkTrailer(path: string, file: FileHandle, dataBytes: number, label: string): Promise<void> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { start: 0, end: dataBytes - 1 })) hash.update(chunk as Buffer);
  const trailer = Buffer.alloc(SNAPSHOT_TRAILER_BYTES);
  await file.read(trailer, 0, SNAPSHOT_TRAILER_BYTES, dataBytes);
  if (!hash.digest().equals(trailer)) throw new IntegrityError(`${label}: sha256 trailer mismatch; the snapshot is corrupt and nothing was read from it`);
}

import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { IntegrityError } from '../util/errors.js';
import { leafPages, topLevelBucket, type BucketRoot } from './bbolt/bucket-walker.js';
import { PageFile } from './bbolt/page-file.js';
import { hasSnapshotTrailer, SNAPSHOT_TRAILER_BYTES, verifySnapshotTrailer } from './etcd-snapshot.js';
import type { KvRecord } from './record.js';

export interface EtcdSnapshotFile {
  /** The highest revision in the snapshot, once a pass of `records` has read to the end. */
  revision(): number;
  /**
   * The live keys under a prefix — the newest revision of each, deleted keys dropped — in revision
   * order. Two passes over the key bucket: the first remembers, per live key in scope, the revision
   * of its newest put; the second yields those. Memory is therefore O(live keys under the prefix),
   * never values: each key is held as a latin1 string mapped to a small integer, about 50 bytes plus
   * the key's length (some 80 MiB of heap for a million 20-byte keys). Pages are read on demand, so
   * the file's size does not count.
   */
  records(prefix?: Buffer): AsyncIterable<KvRecord>;
  close(): Promise<void>;
}

export interface OpenSnapshotOptions {
  /** The caller has already checked the sha256 trailer (while inflating a gzipped copy, say). */
  trailerVerified?: boolean;
}

/**
 * Opens an etcd snapshot as stored (bbolt database + etcd's 32-byte sha256 trailer), after checking
 * the trailer: a file whose hash does not match is refused (exit 4) before anything reads it. A
 * damaged database whose hash matches (written damaged) is refused as it is read, also with exit 4.
 */
export async function openEtcdSnapshot(path: string, label: string, options: OpenSnapshotOptions = {}): Promise<EtcdSnapshotFile> {
  const file = await open(path, 'r');
  try {
    const info = await file.stat();
    // open() succeeds on a directory on Linux; reading it would fail with EISDIR, not a word about why.
    if (!info.isFile()) throw new IntegrityError(`${label}: is ${info.isDirectory() ? 'a directory' : 'not a regular file'}, not an etcd snapshot file; name the snapshot file itself`);
    const size = info.size;
    if (!hasSnapshotTrailer(size)) {
      throw new IntegrityError(`${label}: ${size} bytes is not a bbolt database plus etcd's 32-byte sha256 trailer; the file is truncated or not an etcd snapshot`);
    }
    if (!options.trailerVerified) await checkTrailer(path, label);
    const pages = await PageFile.open(file, size - SNAPSHOT_TRAILER_BYTES, label);
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

const REVISION_KEY_BYTES = 17; // main u64 BE, '_', sub u64 BE
const TOMBSTONE_KEY_BYTES = 18; // ... then 't'
const YIELDED = -1; // no revision is negative

async function* liveRecords(pages: PageFile, bucket: BucketRoot, prefix: Buffer, label: string, seen: (revision: number) => void): AsyncIterable<KvRecord> {
  // Key (latin1, so any bytes round-trip) → main revision of its newest put. A revision is a small
  // integer stored inside the Map's entry, so a key costs its string and the entry, nothing more.
  // A key deleted last is dropped: the Map holds live keys only. etcd allows one change per key per
  // revision, so the main revision alone names the entry.
  const newest = new Map<string, number>();
  for await (const entries of leafPages(pages, bucket, label)) {
    for (const entry of entries) {
      const revision = mainRevision(entry.key, label);
      seen(revision);
      const key = decodeKeyValue(entry.value, label, true).key;
      if (!startsWith(key, prefix)) continue;
      if (entry.key.length === TOMBSTONE_KEY_BYTES) newest.delete(key.toString('latin1'));
      else newest.set(key.toString('latin1'), revision);
    }
  }
  for await (const entries of leafPages(pages, bucket, label)) {
    for (const entry of entries) {
      if (entry.key.length === TOMBSTONE_KEY_BYTES) continue;
      const key = decodeKeyValue(entry.value, label, true).key;
      if (!startsWith(key, prefix)) continue;
      const name = key.toString('latin1');
      if (newest.get(name) !== mainRevision(entry.key, label)) continue;
      newest.set(name, YIELDED); // each key once (overwritten in place: deleting would make V8 rebuild the Map)
      yield decodeKeyValue(entry.value, label);
    }
  }
}

/** The main revision of a `key` bucket entry (its bucket key is the revision, see the format notes). */
function mainRevision(revisionKey: Buffer, label: string): number {
  const length = revisionKey.length;
  if ((length !== REVISION_KEY_BYTES && length !== TOMBSTONE_KEY_BYTES) || revisionKey[8] !== 0x5f /* '_' */ || (length === TOMBSTONE_KEY_BYTES && revisionKey[17] !== 0x74) /* 't' */) {
    throw new IntegrityError(`${label}: an entry of the "key" bucket is keyed by ${length} bytes that are not a revision; the snapshot is damaged or from an unknown etcd`);
  }
  return revisionKey.readUInt32BE(0) * 2 ** 32 + revisionKey.readUInt32BE(4);
}

/**
 * mvccpb.KeyValue: 1 key, 2 create_revision, 3 mod_revision, 4 version, 5 value, 6 lease. With
 * `keyOnly`, stops once the key is read (etcd writes it first), for passes that only look at keys.
 */
export function decodeKeyValue(bytes: Buffer, label: string, keyOnly = false): Required<Pick<KvRecord, 'key' | 'value' | 'lease' | 'createRevision' | 'modRevision' | 'version'>> {
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
      if (at + length > bytes.length) throw new IntegrityError(`${label}: a KeyValue field runs ${at + length - bytes.length} bytes past its record; the snapshot is damaged`);
      const data = bytes.subarray(at, at + length);
      at += length;
      if (field === 1) {
        out.key = data;
        if (keyOnly) break;
      } else if (field === 5) out.value = data;
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

async function checkTrailer(path: string, label: string): Promise<void> {
  const check = verifySnapshotTrailer(label, 'nothing was read from it');
  check.resume(); // only the verdict matters, not the bytes
  await pipeline(createReadStream(path), check);
}

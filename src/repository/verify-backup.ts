import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { verifyConsulSnapshot } from '../formats/consul-snapshot.js';
import { inflate, storedInflateCap } from '../formats/inflate.js';
import { verifySnapshotTrailer } from '../formats/etcd-snapshot.js';
import { hashCounter } from '../util/hash-counter.js';
import { IntegrityError, oneLine } from '../util/errors.js';
import type { Manifest } from './manifest.js';
import type { ObjectStore } from './object-store.js';

export type VerifyOutcome = 'ok' | 'mismatch' | 'missing' | 'damaged';

export interface VerifyResult {
  backup: string;
  job: string;
  kind: string;
  repository: string;
  key: string;
  result: VerifyOutcome;
  /** What was checked: sha256 always; the format's own checksum where it has one. */
  checks: string[];
  detail: string;
  bytes: number;
}

/**
 * Re-reads one stored backup and checks it against its manifest: the size and sha256 of the stored
 * object, then, decompressed, the format's own checksum — etcd's sha256 trailer, the SHA256SUMS inside
 * a Consul snapshot. One pass, streaming.
 */
export async function verifyBackup(store: ObjectStore, manifest: Manifest): Promise<VerifyResult> {
  const base = { backup: manifest.id, job: manifest.job, kind: manifest.kind, repository: manifest.repository.name, key: manifest.repository.key };
  const format = manifest.kind === 'safety-backup' ? String(manifest.details['format']) : manifest.kind;
  const inner = format === 'etcd-snapshot' ? verifySnapshotTrailer(`backup ${manifest.id}`) : format === 'consul-snapshot' ? verifyConsulSnapshot(`backup ${manifest.id}`) : undefined;
  const checks = ['sha256', ...(format === 'etcd-snapshot' ? ['etcd sha256 trailer'] : format === 'consul-snapshot' ? ['consul SHA256SUMS'] : [])];
  if (!(await store.head(manifest.repository.key))) {
    return { ...base, result: 'missing', checks, bytes: 0, detail: `${manifest.repository.key} is not in ${store.location}: the artifact was deleted` };
  }
  const counted = hashCounter();
  try {
    const stored = await store.get(manifest.repository.key);
    stored.on('error', (err) => counted.destroy(err));
    // Inflating past the size the manifest records is damage (or a bomb), never a reason to keep going.
    const cap = storedInflateCap(manifest.bytes.raw, format === 'consul-snapshot' ? 'archive' : 'kvdr');
    const body = inflate(stored.pipe(counted), { compression: manifest.compression, maxBytes: cap, label: `backup ${manifest.id}` });
    await pipeline([body, ...(inner ? [inner] : []), discard()]);
  } catch (err) {
    // A stored object that hashes right but fails its own checksum was damaged before it was stored.
    const mismatch = counted.sha256() !== undefined && counted.sha256() !== manifest.sha256;
    const zlibError = typeof (err as { code?: unknown }).code === 'string' && /^(Z|ZSTD)_/.test((err as { code: string }).code);
    if (!(err instanceof IntegrityError) && !zlibError) throw err;
    return { ...base, result: mismatch ? 'mismatch' : 'damaged', checks, bytes: counted.bytes(), detail: zlibError ? `not valid ${manifest.compression}: ${oneLine(err)}` : oneLine(err) };
  }
  const actual = counted.sha256() ?? '';
  if (actual !== manifest.sha256 || counted.bytes() !== manifest.bytes.stored) {
    return {
      ...base,
      result: 'mismatch',
      checks,
      bytes: counted.bytes(),
      detail: `stored object is ${counted.bytes()} bytes with sha256 ${actual.slice(0, 16)}…; the manifest says ${manifest.bytes.stored} bytes, ${manifest.sha256.slice(0, 16)}…`,
    };
  }
  return { ...base, result: 'ok', checks, bytes: counted.bytes(), detail: `${checks.join(', ')} match` };
}

function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  });
}

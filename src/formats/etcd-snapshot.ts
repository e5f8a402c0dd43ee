import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../util/errors.js';

export const SNAPSHOT_TRAILER_BYTES = 32;

export interface SnapshotCheck {
  /** Database bytes (without the trailer) seen so far. */
  dbBytes(): number;
  /** The verified sha256 (hex) of the database, once the stream has ended. */
  digest(): string | undefined;
}

/**
 * Passes an etcd snapshot through unchanged while checking its trailer: etcd appends sha256(db) as
 * the last 32 bytes, and `etcdctl snapshot save` requires `size % 512 == 32`. The last 32 bytes are
 * held back until the end so that a mismatch fails the stream before its final bytes are released.
 */
export function verifySnapshotTrailer(label = 'etcd snapshot'): Transform & SnapshotCheck {
  const hash = createHash('sha256');
  let held: Buffer = Buffer.alloc(0);
  let dbBytes = 0;
  let digest: string | undefined;
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      const joined = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      const release = joined.length - SNAPSHOT_TRAILER_BYTES;
      if (release <= 0) {
        held = joined;
        return done();
      }
      const out = joined.subarray(0, release);
      held = Buffer.from(joined.subarray(release));
      hash.update(out);
      dbBytes += out.length;
      done(null, out);
    },
    flush(done: TransformCallback) {
      const total = dbBytes + held.length;
      if (held.length < SNAPSHOT_TRAILER_BYTES || total % 512 !== SNAPSHOT_TRAILER_BYTES) {
        return done(new IntegrityError(`${label}: ${total} bytes is not a bbolt database plus a 32-byte sha256 trailer; the stream was cut short or is not an etcd snapshot`));
      }
      const actual = hash.digest();
      if (!actual.equals(held)) {
        return done(new IntegrityError(`${label}: sha256 trailer mismatch (etcd sent ${held.toString('hex').slice(0, 16)}…, data hashes to ${actual.toString('hex').slice(0, 16)}…); the snapshot is corrupt and was not stored`));
      }
      digest = actual.toString('hex');
      done(null, held);
    },
  });
  return Object.assign(transform, { dbBytes: () => dbBytes, digest: () => digest });
}

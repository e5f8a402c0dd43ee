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

/** `etcdctl snapshot save`'s rule: a bbolt database is whole 512-byte blocks, so the trailer shows as `size % 512 == 32`. */
export function hasSnapshotTrailer(bytes: number): boolean {
  return bytes % 512 === SNAPSHOT_TRAILER_BYTES;
}

/**
 * Passes an etcd snapshot through unchanged while checking its trailer: etcd appends sha256(db) as
 * the last 32 bytes. The last 32 bytes are held back until the end so that a mismatch fails the
 * stream before its final bytes are released. `outcome` ends the refusal: what became of the snapshot.
 */
export function verifySnapshotTrailer(label = 'etcd snapshot', outcome = 'was not stored'): Transform & SnapshotCheck {
  const hash = createHash('sha256');
  let held: Buffer = Buffer.alloc(0);
  let dbBytes = 0;
  let digest: string | undefined;
  const release = (out: Buffer): void => {
    hash.update(out);
    dbBytes += out.length;
    transform.push(out);
  };
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      // Only the held tail is copied: chunks of a multi-GB snapshot pass through as they are.
      if (chunk.length >= SNAPSHOT_TRAILER_BYTES) {
        if (held.length > 0) release(held);
        release(chunk.subarray(0, chunk.length - SNAPSHOT_TRAILER_BYTES));
        held = Buffer.from(chunk.subarray(chunk.length - SNAPSHOT_TRAILER_BYTES));
      } else {
        const joined = Buffer.concat([held, chunk]);
        if (joined.length > SNAPSHOT_TRAILER_BYTES) release(joined.subarray(0, joined.length - SNAPSHOT_TRAILER_BYTES));
        held = joined.subarray(Math.max(0, joined.length - SNAPSHOT_TRAILER_BYTES));
      }
      done();
    },
    flush(done: TransformCallback) {
      const total = dbBytes + held.length;
      if (held.length < SNAPSHOT_TRAILER_BYTES || !hasSnapshotTrailer(total)) {
        return done(new IntegrityError(`${label}: ${total} bytes is not a bbolt database plus a 32-byte sha256 trailer; the stream was cut short or is not an etcd snapshot`));
      }
      const actual = hash.digest();
      if (!actual.equals(held)) {
        return done(new IntegrityError(`${label}: sha256 trailer mismatch (the trailer says ${held.toString('hex').slice(0, 16)}…, the data hashes to ${actual.toString('hex').slice(0, 16)}…); the snapshot is corrupt and ${outcome}`));
      }
      digest = actual.toString('hex');
      done(null, held);
    },
  });
  return Object.assign(transform, { dbBytes: () => dbBytes, digest: () => digest });
}

import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface HashCounter extends Transform {
  bytes(): number;
  /** sha256 (hex) of everything that passed, once the stream has ended. */
  sha256(): string | undefined;
}

/** A pass-through that counts bytes and, optionally, hashes them on the way. */
export function hashCounter(options: { hash?: boolean; onBytes?: (total: number) => void } = {}): HashCounter {
  const hash = options.hash === false ? undefined : createHash('sha256');
  let bytes = 0;
  let digest: string | undefined;
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      bytes += chunk.length;
      hash?.update(chunk);
      options.onBytes?.(bytes);
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      digest = hash?.digest('hex');
      done();
    },
  });
  return Object.assign(transform, { bytes: () => bytes, sha256: () => digest });
}

import { pipeline, type Readable, type Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { ObjectStore, PutResult } from '../repository/object-store.js';
import { IntegrityError } from '../util/errors.js';
import { hashCounter } from '../util/hash-counter.js';

export interface StoreArtifactOptions {
  compression: 'gzip' | 'none';
  /** Called as raw bytes flow, with the running total. */
  onProgress?: (rawBytes: number) => void;
  /** Aborting destroys the source; the store then leaves nothing under the key. */
  signal?: AbortSignal;
  /** Maps a failure of the source stream to the error the user sees. */
  describeSourceError?: (err: unknown) => Error;
}

export interface StoredArtifact {
  put: PutResult;
  rawBytes: number;
  storedBytes: number;
  /** sha256 of the stored object (after compression), computed before upload. */
  sha256: string;
}

/**
 * source → count → (gzip) → hash → repository, all streaming. The hash is taken on the way in, so the
 * manifest records what was sent, and the size the repository reports must match what was hashed.
 * If the source fails, the put fails and leaves no object (the store's write-once contract), and the
 * error raised is the source's, not the repository's.
 */
export async function storeArtifact(store: ObjectStore, key: string, source: Readable, options: StoreArtifactOptions): Promise<StoredArtifact> {
  const raw = hashCounter({ hash: false, ...(options.onProgress ? { onBytes: options.onProgress } : {}) });
  const stored = hashCounter();
  // Whichever end fails first is the cause; the pipeline then destroys the other end with that same
  // error, so without this the source would be blamed for a full disk and the repository for etcd dying.
  let firstFailure: 'source' | 'repository' | undefined;
  let sourceError: unknown;
  source.once('error', (err) => {
    if (firstFailure === undefined) {
      firstFailure = 'source';
      sourceError = err;
    }
  });
  stored.once('error', () => (firstFailure ??= 'repository'));
  const stages: (Readable | Transform)[] = [source, raw, ...(options.compression === 'gzip' ? [createGzip({ level: 1 })] : []), stored];
  const body = pipeline(stages as [Readable, ...Transform[]], () => undefined) as unknown as Readable;

  const abort = (): void => {
    source.destroy(Object.assign(new Error('backup aborted'), { name: 'AbortError' }));
  };
  if (options.signal?.aborted) abort();
  options.signal?.addEventListener('abort', abort, { once: true });
  let put: PutResult;
  try {
    put = await store.put(key, body);
  } catch (err) {
    // The repository may give up without consuming the rest (S3 after its retries): stop the source too.
    stored.destroy();
    source.destroy();
    if (firstFailure === 'source') {
      throw options.describeSourceError && !(sourceError instanceof IntegrityError)
        ? options.describeSourceError(sourceError)
        : sourceError;
    }
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
  const sha256 = stored.sha256();
  if (sha256 === undefined || put.size !== stored.bytes()) {
    throw new IntegrityError(
      `${store.location}: ${key} holds ${put.size} bytes but ${stored.bytes()} were sent; the upload is incomplete (delete it and run the backup again)`,
    );
  }
  return { put, rawBytes: raw.bytes(), storedBytes: stored.bytes(), sha256 };
}

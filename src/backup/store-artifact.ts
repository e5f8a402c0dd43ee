import { pipeline, Transform, type Readable, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { zstdAvailable, zstdUnavailable, type Compression } from '../formats/inflate.js';
import type { ObjectStore, PutResult } from '../repository/object-store.js';
import { IntegrityError } from '../util/errors.js';
import { hashCounter } from '../util/hash-counter.js';

export interface StoreArtifactOptions {
  compression: Compression;
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
 * source → count → (gzip | zstd) → hash → repository, all streaming. The hash is taken on the way in, so the
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
  const compressor = compressorFor(options.compression, key);
  const stages: (Readable | Transform)[] = [source, raw, ...(compressor ? [compressor] : []), stored];
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

/** Bytes handed to the compressor at a time: per-write costs of a zlib stream (a threadpool round trip each) stay small against the work. */
const COMPRESS_BLOCK_BYTES = 1024 * 1024;

/**
 * gzip level 1: the fastest level, and KVDB data (JSON, bbolt pages) compresses well at any level.
 * zstd level 1 with its content checksum (XXH64, as the zstd CLI writes by default), so damage inside
 * a frame is caught on inflate and `zstd -t` checks the artifact on its own. Single-threaded, one
 * frame: readable by any zstd decoder. Both run on libuv's threadpool, off the main thread, fed in
 * blocks of COMPRESS_BLOCK_BYTES whatever size the source's chunks are (etcd sends 32 KiB).
 */
function compressorFor(compression: Compression, key: string): Transform | undefined {
  if (compression === 'gzip') return blockFed(zlib.createGzip({ level: 1, chunkSize: 256 * 1024 }));
  if (compression !== 'zstd') return undefined;
  if (!zstdAvailable()) throw zstdUnavailable(key);
  const { ZSTD_c_compressionLevel, ZSTD_c_checksumFlag } = zlib.constants;
  return blockFed(zlib.createZstdCompress({ chunkSize: 256 * 1024, params: { [ZSTD_c_compressionLevel]: 1, [ZSTD_c_checksumFlag]: 1 } }));
}

/**
 * Feeds `inner` (a zlib stream) in blocks of COMPRESS_BLOCK_BYTES, copied into two buffers that take
 * turns: one is filled while the threadpool compresses the other, and neither is allocated again.
 * zlib is done with a block's bytes when its write callback runs, so the block is reused only then.
 *
 * Exactly one frame: Node's zstd stream ends its frame with the last chunk when `end()` comes while
 * that chunk is still queued, then its final flush opens and ends a second, empty frame (13 bytes). A
 * second frame is valid zstd but Node's own decoder stops after the first, so `end()` comes only after
 * the last block's write callback. Backpressure carries through: a chunk is accepted only once there
 * is a free block for it.
 */
function blockFed(inner: Transform): Transform {
  const blocks = [Buffer.allocUnsafeSlow(COMPRESS_BLOCK_BYTES), Buffer.allocUnsafeSlow(COMPRESS_BLOCK_BYTES)];
  let current = 0;
  let filled = 0;
  let inFlight: Promise<void> | undefined;
  let failed: Error | undefined;
  const send = async (bytes: Buffer): Promise<void> => {
    await inFlight;
    if (failed) throw failed;
    inFlight = new Promise<void>((resolve) => {
      inner.write(bytes, (err) => {
        if (err) failed ??= err;
        resolve();
      });
    });
  };
  const take = async (chunk: Buffer): Promise<void> => {
    let offset = 0;
    while (offset < chunk.length) {
      const block = blocks[current] as Buffer;
      const n = Math.min(COMPRESS_BLOCK_BYTES - filled, chunk.length - offset);
      chunk.copy(block, filled, offset, offset + n);
      filled += n;
      offset += n;
      if (filled === COMPRESS_BLOCK_BYTES) {
        await send(block);
        // The other block was the one in flight before `send` waited for it: it is free now.
        current = 1 - current;
        filled = 0;
      }
    }
  };
  const outer = new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      take(chunk).then(() => done(), done);
    },
    flush(done: TransformCallback) {
      const last = filled > 0 ? send((blocks[current] as Buffer).subarray(0, filled)) : Promise.resolve();
      last
        .then(() => inFlight)
        .then(() => {
          if (failed) throw failed;
          inner.once('end', () => done());
          inner.end();
        })
        .catch(done);
    },
    destroy(err, done) {
      inner.destroy();
      done(err);
    },
  });
  inner.on('data', (data: Buffer) => outer.push(data));
  inner.on('error', (err) => outer.destroy(err));
  return outer;
}

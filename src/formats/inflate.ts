import type { Readable } from 'node:stream';
import { Transform, type TransformCallback } from 'node:stream';
import * as zlib from 'node:zlib';
import { IntegrityError, UsageError } from '../util/errors.js';
import { formatBytes } from '../util/table.js';

/**
 * The cap on inflated bytes for a local file (`--file`, `--kvdb_dump_file`) when the user gives none.
 * etcd's largest recommended backend is 8 GiB and Portworx's KVDB is far smaller; twice that leaves
 * room for an export's base64 and JSON, so an artifact that inflates past 16 GiB is a bomb or not a
 * KVDB at all. `--max-inflated-bytes` raises it.
 */
export const DEFAULT_MAX_INFLATED_BYTES = 16 * 1024 ** 3;

/** Inflated bytes buffered ahead of the reader, in each of the two streams between zlib and it. */
const AHEAD_BYTES = 1024 * 1024;

/** Slack over the exact size a manifest records: guards rounding, never a real artifact. */
export const INFLATE_SLACK_BYTES = 1024 ** 2;

/** How kvdr (or the user) compressed an artifact; 'none' is passed through, still counted and capped. */
export type Compression = 'gzip' | 'zstd' | 'none';

export interface InflateOptions {
  /** How the input is compressed. Wins over `gzip` when both are given. */
  compression?: Compression;
  /** Shorthand kept for the archive readers (a Consul snapshot is always a tar.gz): true is `compression: 'gzip'`. */
  gzip?: boolean;
  /** The most bytes the output may hold; one more fails the stream. */
  maxBytes: number;
  /** Names the artifact in errors (a file name or backup id). */
  label: string;
}

/**
 * The cap for inflating a stored backup, from its manifest's `bytes.raw` (what went into kvdr's own
 * compression). Rule:
 * - `layer: 'kvdr'` (kvdr's gzip over the artifact): that layer inflates to exactly `raw` bytes, so the
 *   cap is `raw + INFLATE_SLACK_BYTES`. A bomb planted in the repository stops 1 MiB past the true size.
 * - `layer: 'archive'` (the compression inside the artifact, a Consul snapshot's own tar.gz): `raw` is
 *   still compressed there, so nothing recorded bounds the inflated size better than the local-file
 *   cap: `max(raw + INFLATE_SLACK_BYTES, localCap)`.
 */
export function storedInflateCap(rawBytes: number, layer: 'kvdr' | 'archive' = 'kvdr', localCap = DEFAULT_MAX_INFLATED_BYTES): number {
  const exact = Math.max(0, Math.ceil(rawBytes)) + INFLATE_SLACK_BYTES;
  return layer === 'kvdr' ? exact : Math.max(exact, localCap);
}

/**
 * The bytes of `input`, decompressed per `compression`, failing with a one-line IntegrityError once
 * they pass `maxBytes` or when the compressed stream is damaged (truncated, bad header, bad checksum,
 * bytes after its end). The output is paced by its reader (zlib stops inflating while the output is
 * full), and a failure destroys the zlib stream and the input at once, so a decompression bomb costs
 * at most `maxBytes` of inflating and a few chunks of memory. Destroying the output early (a reader
 * that stops) closes the input too.
 */
export function inflate(input: Readable, options: InflateOptions): Readable {
  const { maxBytes, label } = options;
  const compression: Compression = options.compression ?? (options.gzip ? 'gzip' : 'none');
  let inBytes = 0;
  let outBytes = 0;
  const out = new Transform({
    // Room for a few inflated chunks: decompression (on libuv's threadpool) then runs ahead of the
    // reader instead of taking turns with it.
    readableHighWaterMark: AHEAD_BYTES,
    writableHighWaterMark: AHEAD_BYTES,
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      outBytes += chunk.length;
      if (outBytes > maxBytes) return done(tooLarge(label, maxBytes, compression));
      done(null, chunk);
    },
    flush(done: TransformCallback) {
      // zlib stops at the end of the last gzip member and drops zero bytes after it without a word;
      // Go's gzip reader (Consul's, etcd's tools) refuses them, and so does this. Node's zstd stops
      // after the first frame and ignores whatever follows: kvdr writes one frame, so anything after
      // it is damage (or a multi-frame file, which `zstd -d | zstd` turns into one frame).
      const extra = unzip ? inBytes - unzip.bytesWritten : 0;
      if (extra > 0 && compression === 'zstd') {
        return done(new IntegrityError(`${label}: ${extra} bytes after the end of the zstd frame; the artifact is damaged (or holds several frames: recompress it with zstd), use another copy`));
      }
      if (extra > 0) return done(new GzipDamageError(`${label}: ${extra} bytes after the end of the gzip stream; the artifact is damaged, use another copy`, `${extra} bytes after the gzip stream`));
      done();
    },
  });
  const unzip = decompressor(compression, label);
  input.on('data', (chunk: Buffer | string) => (inBytes += chunk.length));
  // Errors of the input (a file that cannot be read) pass as they are: they are not damage.
  input.on('error', (err) => out.destroy(err));
  // An input destroyed by someone else ends without 'end': fail the output rather than leave it open.
  input.on('close', () => {
    if (!input.readableEnded && !out.destroyed) out.destroy(new IntegrityError(`${label}: the input closed after ${inBytes} bytes, before its end`));
  });
  unzip?.on('error', (err) => out.destroy(compression === 'zstd' ? zstdFailure(label, err, inBytes, outBytes) : zlibFailure(label, err, inBytes, outBytes)));
  out.on('close', () => {
    unzip?.destroy();
    input.destroy();
  });
  if (unzip) input.pipe(unzip).pipe(out);
  else input.pipe(out);
  return out;
}

/** zstd streams arrived in Node 22.15 / 23.8; older runtimes have no createZstdDecompress. */
export function zstdAvailable(): boolean {
  return typeof (zlib as { createZstdDecompress?: unknown }).createZstdDecompress === 'function';
}

/** The zstd-needs-a-newer-Node error, for both ends. */
export function zstdUnavailable(what: string): UsageError {
  return new UsageError(`${what}: compression zstd needs Node.js >= 22.15 (this is ${process.version}); upgrade Node or use compression gzip`);
}

function decompressor(compression: Compression, label: string): (Transform & { bytesWritten: number }) | undefined {
  // 256 KiB output chunks instead of zlib's 16 KiB: per-chunk stream overhead halves the throughput otherwise.
  // zlib hands its options to its Transform too, so highWaterMark applies though its types leave it out.
  if (compression === 'gzip') return zlib.createGunzip({ chunkSize: 256 * 1024, highWaterMark: AHEAD_BYTES } as zlib.ZlibOptions);
  if (compression !== 'zstd') return undefined;
  if (!zstdAvailable()) throw zstdUnavailable(label);
  return zlib.createZstdDecompress({ chunkSize: 256 * 1024, highWaterMark: AHEAD_BYTES } as zlib.ZstdOptions);
}

function tooLarge(label: string, maxBytes: number, compression: Compression): IntegrityError {
  const what = compression !== 'none' ? `inflates past ${maxBytes} bytes (${formatBytes(maxBytes)})` : `is larger than ${maxBytes} bytes (${formatBytes(maxBytes)})`;
  return new IntegrityError(`${label}: ${what}; if the artifact really is that large raise --max-inflated-bytes, otherwise it is damaged or a decompression bomb`);
}

/** A damaged gzip stream (as opposed to the cap): `detail` says what zlib found, without the label. */
export class GzipDamageError extends IntegrityError {
  constructor(
    message: string,
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** zlib's error codes and messages, turned into what happened to the file. */
function zlibFailure(label: string, err: Error, inBytes: number, outBytes: number): GzipDamageError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const message = err.message;
  let what: string;
  if (inBytes === 0) what = 'is empty (0 bytes), not gzip data; the file was cut short or never written';
  else if (code === 'Z_BUF_ERROR' || /unexpected end/i.test(message)) what = `truncated gzip: the data ends after ${inBytes} compressed bytes, before the gzip trailer; the file was cut short`;
  else if (/incorrect header check/.test(message)) what = outBytes === 0 ? 'not gzip data (bad gzip header)' : `bad gzip header after ${outBytes} inflated bytes (garbage after the gzip stream)`;
  else if (/incorrect data check/.test(message)) what = 'gzip CRC mismatch: the inflated data is not what was compressed';
  else if (/incorrect length check/.test(message)) what = 'gzip length check failed: the inflated data is not what was compressed';
  else what = `corrupt gzip data after ${outBytes} inflated bytes (${message})`;
  return new GzipDamageError(`${label}: ${what}; the artifact is damaged, use another copy`, what, { cause: err });
}

/** zstd's error codes, turned into what happened to the file (the same wording as for gzip). */
function zstdFailure(label: string, err: Error, inBytes: number, outBytes: number): IntegrityError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  let what: string;
  if (inBytes === 0) what = 'is empty (0 bytes), not zstd data; the file was cut short or never written';
  else if (code === 'Z_BUF_ERROR' || /unexpected end/i.test(err.message)) what = `truncated zstd: the data ends after ${inBytes} compressed bytes, before the end of the zstd frame; the file was cut short`;
  else if (code === 'ZSTD_error_prefix_unknown') what = 'not zstd data (bad zstd magic)';
  else if (code === 'ZSTD_error_checksum_wrong') what = 'zstd checksum mismatch: the inflated data is not what was compressed';
  else if (code === 'ZSTD_error_frameParameter_windowTooLarge') what = 'the zstd frame needs a window larger than 128 MiB; recompress it without --long or --ultra';
  else what = `corrupt zstd data after ${outBytes} inflated bytes (${err.message})`;
  return new IntegrityError(`${label}: ${what}; the artifact is damaged, use another copy`, { cause: err });
}

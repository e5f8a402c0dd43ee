import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { zstdAvailable, zstdUnavailable, type Compression } from './inflate.js';

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** How a stored object is compressed, told by its first bytes (gzip and zstd have magic numbers; anything else is plain). */
export function compressionOf(head: Buffer): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  return head.subarray(0, 4).equals(ZSTD_MAGIC) ? 'zstd' : 'none';
}

const gzip = promisify(zlib.gzip);

/**
 * Compresses a small object whole (a change segment), on zlib's thread pool rather than the event loop.
 * Same settings as the streaming artifacts: gzip level 1, zstd level 1 with its content checksum.
 */
export async function compressBuffer(bytes: Buffer, compression: Compression, what: string): Promise<Buffer> {
  if (compression === 'none') return bytes;
  if (compression === 'gzip') return gzip(bytes, { level: 1 });
  if (!zstdAvailable()) throw zstdUnavailable(what);
  const { ZSTD_c_compressionLevel, ZSTD_c_checksumFlag } = zlib.constants;
  const zstd = promisify((zlib as unknown as { zstdCompress: (b: Buffer, o: object, cb: (e: Error | null, r: Buffer) => void) => void }).zstdCompress);
  return zstd(bytes, { params: { [ZSTD_c_compressionLevel]: 1, [ZSTD_c_checksumFlag]: 1 } });
}

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { constants, zstdCompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_INFLATED_BYTES, inflate } from '../../src/formats/inflate.js';
import { sniffArtifact } from '../../src/restore/local-artifact.js';
import { IntegrityError } from '../../src/util/errors.js';
import { readAll } from '../../src/util/streams.js';
import { chunked, settles } from './formats-fixtures.js';

const zstd = (bytes: Buffer, checksum = true): Buffer =>
  zstdCompressSync(bytes, { params: { [constants.ZSTD_c_compressionLevel]: 1, [constants.ZSTD_c_checksumFlag]: checksum ? 1 : 0 } });
const opts = (maxBytes = 1024 ** 2) => ({ compression: 'zstd' as const, maxBytes, label: 'x.zst' });

async function failure(stream: Readable): Promise<Error> {
  const drain = async (): Promise<void> => {
    for await (const _chunk of stream) {
      // discard
    }
  };
  return settles(drain().then(() => new Error('no failure'), (err: Error) => err), 30_000);
}

describe('inflate with zstd', () => {
  // Half random, half repetitive: compressible, yet every frame spans several blocks.
  const data = Buffer.concat([randomBytes(200_000), Buffer.alloc(300_000, 'kvdr/')]);
  const zst = zstd(data);

  it('inflates a zstd frame, in any chunking, under the cap', async () => {
    expect(zst.subarray(0, 4)).toEqual(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]));
    for (const size of [7, 1000, zst.length]) {
      expect((await readAll(inflate(chunked(zst, size), opts()))).equals(data)).toBe(true);
    }
    expect((await readAll(inflate(chunked(zst, 4096), opts(data.length)))).equals(data)).toBe(true);
  });

  it('fails one byte past the cap with the same line as gzip', async () => {
    const err = await failure(inflate(chunked(zst, 1000), opts(data.length - 1)));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(new RegExp(`^x\\.zst: inflates past ${data.length - 1} bytes .*raise --max-inflated-bytes.*decompression bomb`));
  });

  const flipped = (bytes: Buffer, at: number): Buffer => {
    const copy = Buffer.from(bytes);
    copy[at] = (copy[at] ?? 0) ^ 0xff;
    return copy;
  };
  it.each([
    ['empty', Buffer.alloc(0), /is empty \(0 bytes\), not zstd data/],
    ['truncated', zst.subarray(0, zst.length - 100), /truncated zstd: the data ends after \d+ compressed bytes/],
    ['cut inside the frame header', zst.subarray(0, 3), /truncated zstd/],
    ['not zstd', Buffer.from('[{"Key":"a"}]'), /not zstd data \(bad zstd magic\)/],
    ['a flipped byte in a block', flipped(zst, Math.floor(zst.length / 2)), /(corrupt zstd data|zstd checksum mismatch)/],
    ['a bad content checksum', flipped(zst, zst.length - 1), /zstd checksum mismatch/],
    ['zero bytes after the frame', Buffer.concat([zst, Buffer.alloc(16)]), /16 bytes after the end of the zstd frame/],
    ['garbage after the frame', Buffer.concat([zst, Buffer.from('garbage')]), /7 bytes after the end of the zstd frame/],
  ])('turns %s into one IntegrityError line', async (_name, bytes, message) => {
    const err = await failure(inflate(chunked(bytes, 1000), opts()));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/^x\.zst: /);
    expect(err.message).toMatch(message);
    expect(err.message).toMatch(/damaged/);
    expect(err.message).not.toContain('\n');
  });

  it('stops a zstd bomb at the cap', async () => {
    const bomb = zstd(Buffer.alloc(64 * 1024 ** 2));
    const err = await failure(inflate(chunked(bomb, 64 * 1024), opts(8 * 1024 ** 2)));
    expect(err.message).toMatch(/inflates past 8388608 bytes/);
  });
});

describe('sniffArtifact on zstd files', () => {
  let dir: string;
  beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'kvdr-zstd-sniff-'))));
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const sniff = async (name: string, bytes: Buffer) => {
    const path = join(dir, name);
    await writeFile(path, bytes);
    return sniffArtifact(path, DEFAULT_MAX_INFLATED_BYTES);
  };

  it('tells the format under the zstd magic', async () => {
    const px = Buffer.from(JSON.stringify([{ Key: 'pwx/a', Value: 'YQ==' }]));
    expect(await sniff('dump.json.zst', zstd(px))).toMatchObject({ format: 'px-dump', compression: 'zstd' });
    const consul = Buffer.from(JSON.stringify([{ key: 'pwx/a', flags: 0, value: 'YQ==' }]));
    expect(await sniff('kv.json.zst', zstd(consul))).toMatchObject({ format: 'consul-export', compression: 'zstd' });
    const header = Buffer.from('{"format":"kvdr-export","version":1}\n');
    expect(await sniff('e.ndjson.zst', zstd(header))).toMatchObject({ format: 'etcd-export', compression: 'zstd' });
    // A long export cut short still sniffs: its first 64 KiB are readable.
    const long = zstd(Buffer.concat([header, Buffer.alloc(1024 ** 2, '{"k":"a"}\n')]));
    expect(await sniff('cut.ndjson.zst', long.subarray(0, long.length - 50))).toMatchObject({ format: 'etcd-export', compression: 'zstd' });
  });

  it('refuses a file that starts like zstd but does not decompress, in one line', async () => {
    const bad = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(40, 0xff)]);
    await expect(sniff('bad.zst', bad)).rejects.toThrow(IntegrityError);
    await expect(sniff('bad.zst', bad)).rejects.toThrow(/^bad\.zst: (corrupt zstd data|truncated zstd)[^\n]*the artifact is damaged, use another copy$/);
    // Cut inside the frame header: nothing to recognise (a file cut later sniffs, and its restore fails).
    const cut = zstd(Buffer.from('[{"Key":"a"}]')).subarray(0, 5);
    await expect(sniff('cut.zst', cut)).rejects.toThrow(/^cut\.zst: truncated zstd: the data ends after 5 compressed bytes/);
  });
});

import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_INFLATED_BYTES, INFLATE_SLACK_BYTES, inflate, storedInflateCap } from '../../src/formats/inflate.js';
import { readPxDump } from '../../src/formats/px-dump.js';
import { IntegrityError } from '../../src/util/errors.js';
import { readAll } from '../../src/util/streams.js';
import { chunked, collect, gzipBomb, settles } from './formats-fixtures.js';

const opts = (maxBytes = 1024 ** 2, gzip = true) => ({ gzip, maxBytes, label: 'x.gz' });

/** Reads the stream to its end, holding nothing, and returns how it failed. */
async function failure(stream: Readable): Promise<Error> {
  const drain = async (): Promise<void> => {
    for await (const _chunk of stream) {
      // discard
    }
  };
  return settles(drain().then(
    () => new Error('no failure'),
    (err: Error) => err,
  ), 30_000);
}

describe('inflate', () => {
  const data = randomBytes(50_000);
  const gz = gzipSync(data);

  it('inflates gzip and passes plain bytes through, both under the cap', async () => {
    expect((await readAll(inflate(chunked(gz, 100), opts()))).equals(data)).toBe(true);
    expect((await readAll(inflate(chunked(data, 777), opts(1024 ** 2, false)))).equals(data)).toBe(true);
    expect((await readAll(inflate(chunked(data, 777), opts(data.length, false)))).equals(data)).toBe(true);
  });

  it('fails one byte past the cap, naming the label and the cap', async () => {
    for (const gzip of [true, false]) {
      const err = await failure(inflate(chunked(gzip ? gz : data, 1000), opts(data.length - 1, gzip)));
      expect(err).toBeInstanceOf(IntegrityError);
      expect(err.message).toMatch(new RegExp(`^x\\.gz: ${gzip ? 'inflates past' : 'is larger than'} ${data.length - 1} bytes .*raise --max-inflated-bytes.*decompression bomb`));
      expect(err.message).not.toContain('\n');
    }
  });

  it.each([
    ['empty', Buffer.alloc(0), /is empty \(0 bytes\)/],
    ['truncated', gz.subarray(0, gz.length - 3), /truncated gzip/],
    ['a short header', gz.subarray(0, 5), /truncated gzip/],
    ['not gzip', Buffer.from('[{"Key":"a"}]'), /not gzip data \(bad gzip header\)/],
    ['a bad CRC', Buffer.concat([gz.subarray(0, gz.length - 8), Buffer.from([0, 0, 0, 0]), gz.subarray(gz.length - 4)]), /gzip CRC mismatch/],
    ['a bad length', Buffer.concat([gz.subarray(0, gz.length - 4), Buffer.from([1, 2, 3, 4])]), /gzip length check failed/],
    ['garbage after the stream', Buffer.concat([gz, Buffer.from('garbage')]), /bad gzip header after \d+ inflated bytes \(garbage after the gzip stream\)/],
  ])('turns %s into one IntegrityError line', async (_name, bytes, message) => {
    const err = await failure(inflate(chunked(bytes, 1000), opts()));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/^x\.gz: /);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
  });

  it('passes errors of the input through as they are (a file that cannot be read is not damage)', async () => {
    const input = new Readable({ read() {} });
    const out = inflate(input, opts());
    setImmediate(() => input.destroy(Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' })));
    const err = await failure(out);
    expect(err).not.toBeInstanceOf(IntegrityError);
    expect((err as NodeJS.ErrnoException).code).toBe('EACCES');
  });

  it('closes the input when its reader stops early', async () => {
    const input = chunked(gzipSync(Buffer.alloc(10 * 1024 ** 2, 7)), 1024);
    const out = inflate(input, opts(DEFAULT_MAX_INFLATED_BYTES));
    for await (const _chunk of out) break;
    await settles(new Promise((resolve) => (input.destroyed ? resolve(undefined) : input.once('close', resolve))));
    expect(input.destroyed).toBe(true);
  });

  it('stops a 10 MB bomb that inflates to 10 GB at the cap, fast and in bounded memory', async () => {
    const bomb = gzipBomb(100);
    expect(bomb.length).toBeLessThan(12 * 1024 ** 2);
    const before = process.memoryUsage().rss;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
    const started = Date.now();
    try {
      const err = await failure(inflate(chunked(bomb, 64 * 1024), { gzip: true, maxBytes: 1024 ** 3, label: 'bomb.gz' }));
      expect(err).toBeInstanceOf(IntegrityError);
      expect(err.message).toMatch(/^bomb\.gz: inflates past 1073741824 bytes \(1.0 GiB\)/);
    } finally {
      clearInterval(sampler);
    }
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(peak - before).toBeLessThan(200 * 1024 ** 2);
  }, 60_000);

  it('a reader on an inflated bomb refuses it at the element cap without holding the bomb', async () => {
    // '[{"Key":"' + gigabytes of 'a' … inside one element: the element cap stops it, not the inflate cap.
    const head = gzipSync(Buffer.from('[{"Key":"'));
    const body = gzipSync(Buffer.alloc(200 * 1024 ** 2, 0x61));
    const before = process.memoryUsage().rss;
    const err = await settles(
      collect(readPxDump(inflate(chunked(Buffer.concat([head, body]), 64 * 1024), { gzip: true, maxBytes: DEFAULT_MAX_INFLATED_BYTES, label: 'dump.gz' }), 'dump.gz', { maxRecordBytes: 16 * 1024 ** 2 })).then(
        () => new Error('no failure'),
        (e: Error) => e,
      ),
      30_000,
    );
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/^dump\.gz: element 0 at byte 1 is larger than 16777216 bytes/);
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 ** 2);
  }, 60_000);
});

describe('storedInflateCap', () => {
  it('is the manifest raw size plus slack for kvdr gzip, at least the local cap for an archive inside', () => {
    expect(storedInflateCap(1000)).toBe(1000 + INFLATE_SLACK_BYTES);
    expect(storedInflateCap(0, 'kvdr')).toBe(INFLATE_SLACK_BYTES);
    expect(storedInflateCap(1000, 'archive')).toBe(DEFAULT_MAX_INFLATED_BYTES);
    expect(storedInflateCap(20 * 1024 ** 3, 'archive')).toBe(20 * 1024 ** 3 + INFLATE_SLACK_BYTES);
    expect(storedInflateCap(1000, 'archive', 5000)).toBe(1000 + INFLATE_SLACK_BYTES);
  });
});

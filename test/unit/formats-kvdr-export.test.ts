import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { EXPORT_VERSION, exportWriter, type ExportHeader } from '../../src/formats/kvdr-export.js';
import { readKvdrExport } from '../../src/formats/kvdr-export-reader.js';
import { RecordDigest } from '../../src/formats/record-digest.js';
import type { KvRecord } from '../../src/formats/record.js';
import { IntegrityError } from '../../src/util/errors.js';
import { readAll } from '../../src/util/streams.js';
import { chunked, collect, settles } from './formats-fixtures.js';

const PREFIX = Buffer.from('pwx/c1/');
const header = (version: 1 | 2 = EXPORT_VERSION): ExportHeader => ({
  format: 'kvdr-export',
  version,
  source: { type: 'etcd', clusterId: 'c1' },
  prefix: PREFIX.toString('base64'),
  revision: 42,
  createdAt: '2026-01-01T00:00:00.000Z',
});
const records: KvRecord[] = [
  { key: Buffer.from('pwx/c1/a'), value: Buffer.from([0, 255]), lease: '7', createRevision: 2, modRevision: 3, version: 2 },
  { key: Buffer.from('pwx/c1/b\xff', 'latin1'), value: Buffer.alloc(0), lease: '0', createRevision: 4, modRevision: 4, version: 1 },
  { key: Buffer.from('pwx/c1/c'), value: Buffer.alloc(70_000, 1), lease: '0', createRevision: 5, modRevision: 6, version: 2 },
];

async function written(version: 1 | 2 = 2, input = records): Promise<string> {
  return (await readAll(Readable.from(input).pipe(exportWriter(() => header(version))))).toString();
}

/** A version 1 export as older kvdr wrote it: no headerSha256 in the trailer. */
async function version1(): Promise<string> {
  const lines = (await written(1)).trimEnd().split('\n');
  const trailer = JSON.parse(lines.pop() as string) as { trailer: { headerSha256?: string } };
  delete trailer.trailer.headerSha256;
  return `${[...lines, JSON.stringify(trailer)].join('\n')}\n`;
}

async function read(text: string | Buffer, maxRecordBytes?: number): Promise<{ header: ExportHeader; covered: boolean; records: KvRecord[] }> {
  const reader = readKvdrExport(chunked(Buffer.isBuffer(text) ? text : Buffer.from(text, 'latin1'), 1000), 'e.ndjson', maxRecordBytes ? { maxRecordBytes } : {});
  const got = await settles(collect(reader.records));
  return { header: await reader.header(), covered: await reader.headerCovered(), records: got };
}

async function refusal(text: string | Buffer, maxRecordBytes?: number): Promise<Error> {
  return read(text, maxRecordBytes).then(
    () => new Error('no failure'),
    (err: Error) => err,
  );
}

/** Replaces line `n` (1-based) of an export. */
function withLine(text: string, n: number, line: string): string {
  const lines = text.split('\n');
  lines[n - 1] = line;
  return lines.join('\n');
}

describe('kvdr export reader', () => {
  it('reads what the writer wrote (version 2: the trailer covers the header)', async () => {
    const text = await written();
    expect(JSON.parse(text.split('\n')[0] as string)).toMatchObject({ version: 2 });
    const got = await read(text);
    expect(got.covered).toBe(true);
    expect(got.header).toEqual(header());
    expect(got.records).toEqual(records);
  });

  it('still reads version 1 exports, and says their header is not covered', async () => {
    const got = await read(await version1());
    expect(got.covered).toBe(false);
    expect(got.records).toEqual(records);
  });

  it('refuses an altered header prefix, also when it still covers every key', async () => {
    const text = await written();
    const altered = withLine(text, 1, JSON.stringify({ ...header(), prefix: Buffer.from('pwx/').toString('base64') }));
    const err = await refusal(altered);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toBe("e.ndjson: the header on line 1 does not match the trailer's headerSha256; the header (its prefix or revision) was altered or damaged");
    expect((await refusal(withLine(text, 1, JSON.stringify({ ...header(), revision: 41 })))).message).toMatch(/headerSha256/);
  });

  it('refuses a version 2 header turned into version 1, and a version 2 trailer without headerSha256', async () => {
    const text = await written();
    expect((await refusal(withLine(text, 1, JSON.stringify(header(1))))).message).toMatch(/does not match the trailer's headerSha256/);
    const lines = text.trimEnd().split('\n');
    const trailer = JSON.parse(lines[lines.length - 1] as string) as { trailer: Record<string, unknown> };
    delete trailer.trailer['headerSha256'];
    expect((await refusal(withLine(text, lines.length, JSON.stringify(trailer)))).message).toMatch(/headerSha256/);
  });

  it('refuses a record whose key is not under the header prefix', async () => {
    const outside = [{ key: Buffer.from('pwx/c2/a'), value: Buffer.from('v') }];
    const err = await refusal(await written(2, outside));
    expect(err.message).toBe("e.ndjson: line 2 has a key outside the header's prefix; the export is damaged");
  });

  it.each([
    ['a key that is not base64', (l: string) => l.replace(/"key":"[^"]+"/, '"key":"cHd4L2MxL2E"'), /line 2 has a key or value that is not valid base64/],
    ['a value with bad characters', (l: string) => l.replace(/"value":"[^"]+"/, '"value":"AP-="'), /line 2 has a key or value that is not valid base64/],
    ['a missing value', (l: string) => l.replace(/"value":"[^"]+",/, ''), /line 2 is not a kvdr export record/],
    ['a lease that is not an id', (l: string) => l.replace(/"lease":"7"/, '"lease":"x"'), /line 2 has a lease that is not a decimal id/],
    ['a negative revision', (l: string) => l.replace(/"modRevision":3/, '"modRevision":-3'), /line 2 has a modRevision that is not a non-negative integer/],
    ['a line that is not JSON', () => '{"key":', /line 2 is not valid JSON/],
    ['a line that is an array', () => '[1]', /line 2 is not a JSON object/],
  ])('refuses %s', async (_what, change, message) => {
    const text = await written();
    const err = await refusal(withLine(text, 2, change(text.split('\n')[1] as string)));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(message);
  });

  it('refuses a line that is not UTF-8', async () => {
    const text = Buffer.from(await written(), 'latin1');
    const at = text.indexOf('"createdAt"') + 14;
    text[at] = 0xff;
    const err = await refusal(text);
    expect(err.message).toMatch(/not a kvdr export/); // the header line: not recognisable
    const second = Buffer.from(await written(), 'latin1');
    second[second.indexOf('\n') + 3] = 0xc3;
    expect((await refusal(second)).message).toMatch(/^e\.ndjson: line 2 is not valid UTF-8/);
  });

  it('refuses a count that does not match, records after the trailer, data after it, a cut', async () => {
    const text = await written();
    const lines = text.trimEnd().split('\n');
    const trailer = lines[lines.length - 1] as string;
    const fewer = [...lines.slice(0, 2), trailer].join('\n') + '\n';
    expect((await refusal(fewer)).message).toMatch(/the trailer says 3 records, the export holds 1/);
    expect((await refusal(`${text}${lines[1] as string}\n`)).message).toMatch(/line 6 follows the trailer/);
    expect((await refusal(`${text}\n`)).message).toMatch(/line 6 follows the trailer/);
    expect((await refusal(text.slice(0, -1))).message).toMatch(/the trailer on line 5 lacks its final newline; the export is truncated/);
    expect((await refusal(lines.slice(0, 3).join('\n') + '\n')).message).toMatch(/ends after line 3 without a trailer; the export is truncated/);
    expect((await refusal('')).message).toMatch(/^e\.ndjson: is empty; not a kvdr export/);
    // Swapped records: out of key order.
    expect((await refusal([lines[0], lines[2], lines[1], ...lines.slice(3)].join('\n') + '\n')).message).toMatch(/line 3 is out of key order/);
  });

  it('caps a line (no newline for gigabytes) and names its number, without buffering it', async () => {
    const text = await written();
    const endOfLine2 = text.indexOf('\n', text.indexOf('\n') + 1);
    const huge = Readable.from(
      (function* () {
        yield Buffer.from(text.slice(0, endOfLine2 + 1), 'latin1');
        for (let i = 0; i < 4096; i++) yield Buffer.alloc(64 * 1024, 0x41); // 256 MiB of one line
      })(),
    );
    const before = process.memoryUsage().rss;
    const reader = readKvdrExport(huge, 'e.ndjson', { maxRecordBytes: 8 * 1024 ** 2 });
    const err = await settles(collect(reader.records).then(() => new Error('no failure'), (e: Error) => e));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/^e\.ndjson: line 3 is longer than 8388608 bytes \(8.0 MiB\)/);
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 1024 ** 2);
    // A line at the cap is read.
    const one = [{ key: Buffer.from('pwx/c1/k'), value: Buffer.alloc(3000, 2) }];
    const small = await written(2, one);
    const longest = Math.max(...small.split('\n').map((l) => l.length));
    expect((await read(small, longest)).records).toHaveLength(1);
    expect((await refusal(small, longest - 1)).message).toMatch(/is longer than/);
  });

  it('closes its input when a pass stops early', async () => {
    const input = chunked(Buffer.from(await written(), 'latin1'), 10);
    const reader = readKvdrExport(input, 'e');
    for await (const _record of reader.records) break;
    expect(input.destroyed).toBe(true);
  });

  it('header sha256 is over the exact header line without its newline', async () => {
    const text = await written();
    const trailer = JSON.parse(text.trimEnd().split('\n').pop() as string) as { trailer: { headerSha256: string; count: number; digest: string } };
    expect(trailer.trailer.headerSha256).toBe(createHash('sha256').update(text.slice(0, text.indexOf('\n'))).digest('hex'));
    const digest = new RecordDigest();
    for (const r of records) digest.add(r.key, r.value);
    expect(trailer.trailer).toEqual({ count: 3, digest: digest.digest(), headerSha256: trailer.trailer.headerSha256 });
  });
});

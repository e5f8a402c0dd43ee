import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readConsulExport } from '../../src/formats/consul-export-reader.js';
import { readJsonArray } from '../../src/formats/json-array-reader.js';
import { readPxDump } from '../../src/formats/px-dump.js';
import { decodeBase64Strict, isStrictBase64 } from '../../src/formats/text.js';
import { IntegrityError, KvdrError } from '../../src/util/errors.js';
import { chunked, collect, settles } from './formats-fixtures.js';

const FIXTURES = new URL('../fixtures/pxdump/', import.meta.url);

async function refusal(items: AsyncIterable<unknown>): Promise<Error> {
  return settles(collect(items).then(
    () => new Error('no failure'),
    (err: Error) => err,
  ));
}

const text = (s: string, size = 7): Readable => chunked(Buffer.from(s, 'utf8'), size);

describe('strict base64', () => {
  it.each(['', 'YQ==', 'YWI=', 'YWJj', 'AP8=', '+/+/'])('accepts %j', (s) => expect(isStrictBase64(s)).toBe(true));
  it.each([
    ['a length not a multiple of 4', 'YWJ'],
    ['a character outside the alphabet', 'YW-j'],
    ['URL-safe base64', 'a_8='],
    ['padding in the middle', 'YQ==YQ=='],
    ['three padding characters', 'Y==='],
    ['whitespace', 'YW Jj'],
    ['a newline', 'YWJj\nYWJj'],
    ['set bits under "=="', 'YR=='],
    ['set bits under "="', 'YWJ='],
  ])('refuses %s', (_what, s) => {
    expect(isStrictBase64(s)).toBe(false);
    expect(decodeBase64Strict(s)).toBeUndefined();
  });
});

describe('json array reader', () => {
  it('caps one element, naming its index and byte offset', async () => {
    const big = `[{"a":1}, {"b":"${'x'.repeat(5000)}"}]`;
    const err = await refusal(readJsonArray(text(big, 100), 'f.json', { maxRecordBytes: 1000 }));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/^f\.json: element 1 at byte 10 is larger than 1000 bytes/);
    // At the cap exactly is fine.
    const exact = `[${JSON.stringify({ b: 'x'.repeat(992) })}]`;
    expect(await collect(readJsonArray(text(exact, 64), 'f.json', { maxRecordBytes: 1000 }))).toHaveLength(1);
  });

  it('refuses bytes that are not UTF-8, naming the element and where', async () => {
    const bytes = Buffer.concat([Buffer.from('[{"Key":"a"},\n {"Key":"b'), Buffer.from([0xff, 0xfe]), Buffer.from('"}]')]);
    const err = await refusal(readJsonArray(chunked(bytes, 3), 'f.json'));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toBe('f.json: element 1 at byte 15 is not valid UTF-8 (byte 24); the file is damaged');
    // An overlong encoding and a UTF-16 surrogate encoded in UTF-8 are not UTF-8 either.
    for (const bad of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82]]) {
      const doc = Buffer.concat([Buffer.from('[{"k":"'), Buffer.from(bad), Buffer.from('"}]')]);
      expect((await refusal(readJsonArray(chunked(doc, 2), 'f.json'))).message).toMatch(/element 0 at byte 1 is not valid UTF-8 \(byte 7\)/);
    }
  });

  it.each([
    ['an empty file', '', /before a JSON array started \(the file is empty\)/],
    ['a truncated element', '[{"Key":"a"', /inside element 0, which starts at byte 1; the file is truncated/],
    ['a missing closing bracket', '[{"Key":"a"}', /after element 0; the file is truncated/],
    ['a trailing comma', '[{"a":1},]', /expected an object as element 1/],
    ['data after the array', '[{"a":1}] x', /unexpected data after the end of the array/],
    ['a bad element', '[{"a":}]', /element 0 is not valid JSON/],
    ['not an array', '{"a":1}', /expected '\[' \(a JSON array\)/],
  ])('refuses %s in one line', async (_what, doc, message) => {
    const err = await refusal(readJsonArray(text(doc), 'f.json'));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
  });

  it('keeps a JSON.parse message to one short line', async () => {
    const doc = `[{"a":\n\n${'1'.repeat(10_000)}x}]`;
    const err = await refusal(readJsonArray(text(doc, 1000), 'f.json'));
    expect(err.message).not.toContain('\n');
    expect(err.message.length).toBeLessThan(300);
  });
});

describe('px dump reader', () => {
  const dump = (pairs: unknown[]): Readable => text(JSON.stringify(pairs), 13);

  it('reads both fixtures, null and empty values and the "" key (the cluster domain itself)', async () => {
    for (const name of ['pwx_kvdb_2018-05-25T22:57:41Z.dump', 'pwx_kvdb_2018-05-25T22:59:08Z.dump']) {
      const records = await collect(readPxDump(createReadStream(new URL(name, FIXTURES)), name));
      const reference = JSON.parse(await readFile(new URL(name, FIXTURES), 'utf8')) as { Key: string; Value: string | null }[];
      expect(records.map((r) => r.key.toString())).toEqual(reference.map((p) => p.Key));
      expect(records.map((r) => r.value.toString('base64'))).toEqual(reference.map((p) => p.Value ?? ''));
    }
    const records = await collect(readPxDump(dump([{ Key: '', Value: 'YQ==', KVDBIndex: 3 }, { Key: 'n', Value: null }, { Key: 'e', Value: '' }]), 'd'));
    expect(records).toEqual([
      { key: Buffer.alloc(0), value: Buffer.from('a'), kvdbIndex: 3 },
      { key: Buffer.from('n'), value: Buffer.alloc(0), kvdbIndex: 0 },
      { key: Buffer.from('e'), value: Buffer.alloc(0), kvdbIndex: 0 },
    ]);
  });

  it.each([
    ['a missing Key', [{ Value: 'YQ==' }], /element 0 at byte 1 has no Key string/],
    ['a numeric Key', [{ Key: 5, Value: 'YQ==' }], /element 0 at byte 1 has no Key string/],
    ['a null Key', [{ Key: null, Value: 'YQ==' }], /has no Key string/],
    ['a Value that is a number', [{ Key: 'a', Value: 5 }], /\("a"\) has a Value that is not base64 text/],
    ['a Value with a bad length', [{ Key: 'a', Value: 'YWJ' }], /\("a"\) has a Value that is not valid base64/],
    ['a Value with a bad character', [{ Key: 'a', Value: 'Y!==' }], /not valid base64/],
    ['a Value with padding inside', [{ Key: 'a', Value: 'YQ==YQ==' }], /not valid base64/],
    ['a lone surrogate in a Key', [{ Key: '\ud800', Value: null }], /unpaired UTF-16 surrogate/],
    ['a KVDBIndex that is text', [{ Key: 'a', Value: null, KVDBIndex: '7' }], /KVDBIndex that is not a non-negative integer/],
  ])('refuses %s', async (_what, pairs, message) => {
    const err = await refusal(readPxDump(dump(pairs), 'd.dump'));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/^d\.dump: /);
    expect(err.message).toMatch(message);
  });

  it('reads a dump that is just null (Go marshals a nil slice so) as empty, and nothing like it', async () => {
    expect(await collect(readPxDump(text(' null\n', 2), 'd'))).toEqual([]);
    for (const doc of ['nul', 'nu ll', 'null x', 'nulll', 'n']) {
      expect(await refusal(readPxDump(text(doc, 2), 'd'))).toBeInstanceOf(IntegrityError);
    }
    // Only PX dumps: a consul kv export is never null.
    expect(await refusal(readConsulExport(text('null'), 'e'))).toBeInstanceOf(IntegrityError);
  });

  it('refuses non-UTF-8 bytes instead of reading U+FFFD into a key', async () => {
    const bytes = Buffer.concat([Buffer.from('[{"Key":"k'), Buffer.from([0x80]), Buffer.from('","Value":null}]')]);
    const err = await refusal(readPxDump(chunked(bytes, 4), 'd.dump'));
    expect(err.message).toMatch(/^d\.dump: element 0 at byte 1 is not valid UTF-8 \(byte 10\)/);
  });

  it('never fails with anything but a KvdrError, whatever the bytes', async () => {
    const seeds = [Buffer.from('[{"Key":"a","Value":"YQ=="}]'), Buffer.alloc(0), Buffer.from('['), Buffer.from('[{"Key":"\\'), Buffer.from([0x5b, 0x7b, 0xff])];
    for (const seed of seeds) {
      for (let cut = 0; cut <= seed.length; cut++) {
        const err = await refusal(readPxDump(chunked(seed.subarray(0, cut), 1), 'd')).catch((e: unknown) => e as Error);
        if (err.message !== 'no failure') expect(err).toBeInstanceOf(KvdrError);
      }
    }
  });
});

describe('consul export reader', () => {
  it('reads null and missing values as empty, and flags', async () => {
    const doc = JSON.stringify([{ key: 'a', flags: 3, value: 'AP8=' }, { key: 'b', flags: 0, value: null }, { key: 'c' }]);
    expect(await collect(readConsulExport(text(doc), 'e.json'))).toEqual([
      { key: Buffer.from('a'), value: Buffer.from([0, 255]), flags: 3 },
      { key: Buffer.from('b'), value: Buffer.alloc(0), flags: 0 },
      { key: Buffer.from('c'), value: Buffer.alloc(0), flags: 0 },
    ]);
  });

  it.each([
    ['invalid base64', [{ key: 'a', value: 'YWJ' }], /\("a"\) has a value that is not valid base64/],
    ['a value that is a number', [{ key: 'a', value: 1 }], /is not a consul kv export entry/],
    ['negative flags', [{ key: 'a', flags: -1, value: '' }], /flags that are not a non-negative integer/],
    ['a missing key', [{ flags: 0, value: '' }], /is not a consul kv export entry/],
  ])('refuses %s', async (_what, entries, message) => {
    const err = await refusal(readConsulExport(text(JSON.stringify(entries)), 'e.json'));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(message);
  });
});

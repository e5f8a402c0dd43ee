import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readJsonArray } from '../../src/formats/json-array-reader.js';
import { readPxDump } from '../../src/formats/px-dump.js';
import { SetDigest } from '../../src/formats/set-digest.js';
import { KeyScope } from '../../src/restore/key-scope.js';
import { IntegrityError } from '../../src/util/errors.js';

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Feeds the text in chunks of `size` bytes, so elements straddle chunk boundaries. */
function chunks(text: string, size: number): Readable {
  const bytes = Buffer.from(text);
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += size) parts.push(bytes.subarray(i, i + size));
  return Readable.from(parts);
}

describe('JSON array reader', () => {
  const text = ' [ {"a":"x}y\\"]","n":[1,{"b":2}]} ,\n{"k":"ünï"} ] ';

  it.each([1, 3, 7, 1000])('yields each object with its byte offset, in %i-byte chunks', async (size) => {
    const elements = await all(readJsonArray(chunks(text, size), 't'));
    expect(elements.map((e) => e.value)).toEqual([{ a: 'x}y"]', n: [1, { b: 2 }] }, { k: 'ünï' }]);
    expect(elements.map((e) => e.offset)).toEqual([3, Buffer.from(text).indexOf('{"k"')]);
  });

  it.each([
    ['', /ends at byte 0 before a JSON array started \(the file is empty\); the file is truncated/],
    ['[', /ends at byte 1 right after the opening '\['; the file is truncated/],
    ['[{"a":1},', /ends at byte 9 after element 0; the file is truncated/],
    ['[{"a":"1', /ends at byte 8 inside element 0, which starts at byte 1; the file is truncated/],
    ['{"a":1}', /malformed JSON at byte 0: expected '\[' \(a JSON array\)/],
    ['[{"a":1}{"b":2}]', /malformed JSON at byte 8: expected ',' or '\]' after element 0/],
    ['[{"a":1},]', /malformed JSON at byte 9: expected an object as element 1/],
    ['[{"a":1}] x', /malformed JSON at byte 10: unexpected data after the end of the array/],
    ['[{"a":01}]', /malformed JSON at byte 1: element 0 is not valid JSON/],
  ])('names where %j goes wrong', async (input, message) => {
    const err = await all(readJsonArray(chunks(input, 4), 'file.json')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(message);
  });

  it('reads an empty array', async () => {
    expect(await all(readJsonArray(chunks('[ ]', 1), 't'))).toEqual([]);
  });
});

describe('PX dump reader', () => {
  it('decodes base64 and null values and keeps KVDBIndex', async () => {
    const dump = JSON.stringify([
      { Key: 'a/b', Value: Buffer.from([0, 255]).toString('base64'), KVDBIndex: 7 },
      { Key: 'nil', Value: null, KVDBIndex: 9 },
    ]);
    const records = await all(readPxDump(chunks(dump, 5), 'd'));
    expect(records.map((r) => [r.key.toString(), r.value.toString('hex'), r.kvdbIndex])).toEqual([['a/b', '00ff', 7], ['nil', '', 9]]);
  });

  it('refuses elements that are not KVPairs', async () => {
    await expect(all(readPxDump(chunks('[{"key":"a"}]', 5), 'd.dump'))).rejects.toThrow(/element 0 at byte 1 has no Key/);
    await expect(all(readPxDump(chunks('[{"Key":"a","Value":"!!"}]', 5), 'd.dump'))).rejects.toThrow(/not valid base64/);
  });
});

describe('key scope', () => {
  it('keeps keys under the prefix where they are', () => {
    const scope = new KeyScope({ base: 'pwx/c1/', prefix: 'volumes/' });
    expect(scope.scope.toString()).toBe('pwx/c1/volumes/');
    expect(scope.map(Buffer.from('pwx/c1/volumes/v1'))?.toString()).toBe('pwx/c1/volumes/v1');
    expect(scope.map(Buffer.from('pwx/c1/nodes/n1'))).toBeUndefined();
    expect(scope.map(Buffer.from('pwx/c1/volumes'))).toBeUndefined();
  });

  it('re-roots under --to-prefix, which becomes the scope', () => {
    const scope = new KeyScope({ base: 'pwx/c1/', prefix: 'pwx/c1/nodes/', toPrefix: 'drill/' });
    expect(scope.scope.toString()).toBe('drill/');
    expect(scope.map(Buffer.from('pwx/c1/nodes/n1'))?.toString()).toBe('drill/n1');
    expect(scope.topLevel(Buffer.from('drill/a/b'))).toBe('a/');
    expect(() => new KeyScope({ base: '', toPrefix: '' })).toThrow(/non-empty/);
  });
});

describe('set digest', () => {
  it('is the same for the same pairs in any order, and differs on any change', () => {
    const of = (pairs: [string, string][]): string => {
      const d = new SetDigest();
      for (const [k, v] of pairs) d.add(Buffer.from(k), Buffer.from(v));
      return d.digest();
    };
    expect(of([['a', '1'], ['b', '2']])).toBe(of([['b', '2'], ['a', '1']]));
    expect(of([['a', '1'], ['b', '2']])).not.toBe(of([['a', '1'], ['b', '3']]));
    expect(of([['ab', '']])).not.toBe(of([['a', 'b']]));
  });
});

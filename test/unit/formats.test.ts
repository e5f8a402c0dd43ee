import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { verifySnapshotTrailer } from '../../src/formats/etcd-snapshot.js';
import { exportWriter, type ExportHeader } from '../../src/formats/kvdr-export.js';
import { RecordDigest } from '../../src/formats/record-digest.js';
import { prefixEnd } from '../../src/sources/etcd/range-reader.js';
import { IntegrityError } from '../../src/util/errors.js';
import { readAll } from '../../src/util/streams.js';

/** A stand-in snapshot: `pages` 512-byte blocks of random bytes and their sha256, as etcd frames them. */
function fakeSnapshot(blocks: number): Buffer {
  const db = randomBytes(blocks * 512);
  return Buffer.concat([db, createHash('sha256').update(db).digest()]);
}

function chunked(data: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

describe('etcd snapshot trailer check', () => {
  it.each([1, 7, 31, 32, 33, 4096, 100_000])('passes a good snapshot through unchanged in %i-byte chunks', async (size) => {
    const snapshot = fakeSnapshot(20);
    const check = verifySnapshotTrailer();
    const out = await readAll(chunked(snapshot, size).pipe(check));
    expect(out.equals(snapshot)).toBe(true);
    expect(check.dbBytes()).toBe(snapshot.length - 32);
    expect(check.digest()).toBe(snapshot.subarray(-32).toString('hex'));
  });

  it('fails on a flipped bit, before releasing the last bytes', async () => {
    const snapshot = fakeSnapshot(4);
    snapshot[100] = (snapshot[100] as number) ^ 1;
    const check = verifySnapshotTrailer('test snapshot');
    const received: Buffer[] = [];
    check.on('data', (d: Buffer) => received.push(d));
    const err = await new Promise<Error>((resolve) => {
      check.on('error', resolve);
      chunked(snapshot, 64).pipe(check);
    });
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(/^test snapshot: sha256 trailer mismatch/);
    expect(Buffer.concat(received).length).toBe(snapshot.length - 32);
  });

  it('fails on a stream cut short or without a trailer', async () => {
    for (const data of [fakeSnapshot(4).subarray(0, 1000), randomBytes(2048), Buffer.alloc(10)]) {
      await expect(readAll(chunked(data, 300).pipe(verifySnapshotTrailer()))).rejects.toThrow(/not a bbolt database plus a 32-byte sha256 trailer/);
    }
  });
});

describe('kvdr export writer', () => {
  const header = (): ExportHeader => ({
    format: 'kvdr-export',
    version: 2,
    source: { type: 'etcd' },
    prefix: '',
    revision: 9,
    createdAt: '2026-01-01T00:00:00.000Z',
  });

  it('writes header, one base64 line per record and a trailer with count, digest and the header line\'s sha256', async () => {
    const records = [
      { key: Buffer.from('a'), value: Buffer.from([0, 255]), lease: '7', createRevision: 2, modRevision: 3, version: 2 },
      { key: Buffer.from([0x62, 0xff]), value: Buffer.alloc(0), lease: '0', createRevision: 4, modRevision: 4, version: 1 },
    ];
    const writer = exportWriter(header);
    const text = (await readAll(Readable.from(records).pipe(writer))).toString();
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toEqual(header());
    expect(lines[1]).toEqual({ key: 'YQ==', value: 'AP8=', lease: '7', createRevision: 2, modRevision: 3, version: 2 });
    expect(lines[2]).toMatchObject({ key: Buffer.from([0x62, 0xff]).toString('base64'), value: '' });
    const digest = new RecordDigest();
    for (const r of records) digest.add(r.key, r.value);
    const headerSha256 = createHash('sha256').update(text.slice(0, text.indexOf('\n'))).digest('hex');
    expect(lines[3]).toEqual({ trailer: { count: 2, digest: digest.digest(), headerSha256 } });
    expect(writer.summary().count).toBe(2);
  });

  it('writes header and trailer for an empty scope', async () => {
    const lines = (await readAll(Readable.from([]).pipe(exportWriter(header)))).toString().trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1] ?? '')).toMatchObject({ trailer: { count: 0 } });
  });
});

describe('record digest', () => {
  it('depends on every byte and on the boundary between key and value', () => {
    const digestOf = (pairs: [string, string][]): string => {
      const d = new RecordDigest();
      for (const [k, v] of pairs) d.add(Buffer.from(k), Buffer.from(v));
      return d.digest();
    };
    expect(digestOf([['ab', 'c']])).not.toBe(digestOf([['a', 'bc']]));
    expect(digestOf([['a', '1'], ['b', '2']])).not.toBe(digestOf([['a', '1'], ['b', '3']]));
    expect(digestOf([['a', '1']])).toBe(digestOf([['a', '1']]));
  });

  it('refuses keys out of order, so two digests of one set always agree', () => {
    const d = new RecordDigest();
    d.add(Buffer.from('b'), Buffer.from(''));
    expect(() => d.add(Buffer.from('a'), Buffer.from(''))).toThrow(/ascending order/);
  });
});

describe('prefix range end', () => {
  it('is the next key after every key with the prefix', () => {
    expect(prefixEnd(Buffer.from('pwx/c1/'))).toEqual(Buffer.from('pwx/c10'));
    expect(prefixEnd(Buffer.from([0x61, 0xff, 0xff]))).toEqual(Buffer.from([0x62]));
    expect(prefixEnd(Buffer.from([0xff]))).toEqual(Buffer.from([0]));
  });
});

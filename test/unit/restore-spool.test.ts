import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SequenceDigest } from '../../src/formats/set-digest.js';
import type { KvRecord } from '../../src/formats/record.js';
import { Spool } from '../../src/restore/spool.js';

async function all<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

describe('restore spool', () => {
  it('gives back every record as added: empty values, flags, a value larger than a chunk, frames across chunk edges', async () => {
    const records: KvRecord[] = [];
    for (let i = 0; i < 20_000; i++) records.push({ key: Buffer.from(`k/${i}`), value: Buffer.alloc(i % 300, i & 0xff) });
    records.push({ key: Buffer.from('big'), value: Buffer.alloc(3 * 1024 * 1024, 7) });
    records.push({ key: Buffer.from('flagged'), value: Buffer.alloc(0), flags: 42 });
    records.push({ key: Buffer.from([0xff, 0x00]), value: Buffer.from('after the big one'), flags: 0 });
    const spool = await Spool.create();
    try {
      for (const r of records) await spool.add(r.key, r.value, r.flags);
      await spool.finish();
      expect(spool.records).toBe(records.length);
      const back = await all(spool.read());
      expect(back.length).toBe(records.length);
      back.forEach((r, i) => {
        const want = records[i] as KvRecord;
        expect(r.key.equals(want.key)).toBe(true);
        expect(r.value.equals(want.value)).toBe(true);
        expect(r.flags).toBe(want.flags);
      });
      // A second pass reads the same (a rollback never needs it, but reading must not consume the file).
      expect((await all(spool.read())).length).toBe(records.length);
    } finally {
      await spool.discard();
    }
  });

  it('lives in a private directory that discard removes', async () => {
    const spool = await Spool.create();
    const dir = (spool as unknown as { dir: string }).dir;
    expect(existsSync(dir)).toBe(true);
    await spool.discard();
    await spool.discard(); // twice is fine
    expect(existsSync(dir)).toBe(false);
  });
});

describe('SequenceDigest', () => {
  it('is sha256 over u32be(len key) key u32be(len value) value of the pairs in turn, staged or not', () => {
    const pairs: [Buffer, Buffer][] = [
      [Buffer.from('a'), Buffer.from('1')],
      [Buffer.from('b'), Buffer.alloc(0)],
      [Buffer.from('c'), Buffer.alloc(100 * 1024, 3)], // larger than the staging buffer
      [Buffer.from('d'), Buffer.from('after')],
    ];
    const reference = createHash('sha256');
    const length = Buffer.alloc(4);
    const digest = new SequenceDigest();
    for (const [key, value] of pairs) {
      length.writeUInt32BE(key.length);
      reference.update(length).update(key);
      length.writeUInt32BE(value.length);
      reference.update(length).update(value);
      digest.add(key, value);
    }
    expect(digest.count).toBe(4);
    expect(digest.digest()).toBe(reference.digest('hex'));
  });
});

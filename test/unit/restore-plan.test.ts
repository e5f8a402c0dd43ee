import { describe, expect, it } from 'vitest';
import type { KvRecord } from '../../src/formats/record.js';
import { SequenceDigest, SetDigest } from '../../src/formats/set-digest.js';
import { KeyScope } from '../../src/restore/key-scope.js';
import { planRestore, TopLevelCounts, type RestorePlan } from '../../src/restore/plan.js';
import { Spool } from '../../src/restore/spool.js';
import type { KvTarget } from '../../src/sources/kv-target.js';
import { IntegrityError } from '../../src/util/errors.js';

/** The plan asks a target only for its limits; these are etcd's defaults. */
const limits = { description: 'etcd:test', maxValueBytes: 1536 * 1024, refuse: () => undefined } as unknown as KvTarget;

const record = (key: string, value = `v-${key}`): KvRecord => ({ key: Buffer.from(key), value: Buffer.from(value) });

async function* each(records: KvRecord[]): AsyncIterable<KvRecord> {
  yield* records;
}

/** Plans `records` the way a restore does (with a spool) or a dry run does (without one). */
async function plan(records: KvRecord[], withSpool: boolean): Promise<RestorePlan> {
  const spool = withSpool ? await Spool.create() : undefined;
  try {
    return await planRestore(each(records), new KeyScope({ base: '' }), limits, {
      label: 'test',
      again: async function* () {
        let index = 0;
        for (const r of records) yield { key: r.key, index: index++ };
      },
      ...(spool ? { spool } : {}),
    });
  } finally {
    await spool?.discard();
  }
}

function setDigest(records: KvRecord[]): string {
  const digest = new SetDigest();
  for (const r of records) digest.add(r.key, r.value);
  return digest.digest();
}

describe('restore plan', () => {
  const ascending = Array.from({ length: 5000 }, (_, i) => record(`k/${String(i).padStart(5, '0')}`));

  it('digests keys in ascending order by SequenceDigest, with or without a spool', async () => {
    const sequence = new SequenceDigest();
    for (const r of ascending) sequence.add(r.key, r.value);
    const expected = sequence.digest();
    for (const withSpool of [true, false]) {
      const planned = await plan(ascending, withSpool);
      expect(planned).toMatchObject({ ascending: true, records: 5000, digest: expected });
    }
  });

  it('gives the SetDigest of every record when the order breaks late, the records before the break taken from the spool', async () => {
    const late = [...ascending, record('a/first-out-of-order'), record('z/last')];
    for (const withSpool of [true, false]) {
      const planned = await plan(late, withSpool);
      expect(planned).toMatchObject({ ascending: false, records: 5002, digest: setDigest(late) });
    }
  });

  it('finds a key repeated after the order broke even when its first occurrence came before (and the first record itself)', async () => {
    for (const repeated of [0, 2500, 4999]) {
      const late = [...ascending, record('a/out-of-order'), record((ascending[repeated] as KvRecord).key.toString(), 'again')];
      for (const withSpool of [true, false]) {
        const failed = await plan(late, withSpool).catch((err: unknown) => err);
        expect(failed).toBeInstanceOf(IntegrityError);
        expect(String(failed)).toContain(`occurs twice (records ${repeated} and 5001)`);
      }
    }
  });

  it('finds a key repeated right where the order breaks', async () => {
    const failed = await plan([record('a'), record('b'), record('b', 'again')], true).catch((err: unknown) => err);
    expect(String(failed)).toContain('occurs twice (records 1 and 2)');
  });
});

describe('plan summary: keys per top-level path', () => {
  it('lists every path while there are few', () => {
    const counts = new TopLevelCounts();
    for (const path of ['nodes/', 'nodes/', 'alerts/', 'volumes/', 'nodes/']) counts.add(path);
    expect(counts.summary()).toEqual({ rows: [['alerts/', 1], ['nodes/', 3], ['volumes/', 1]] });
    expect(JSON.stringify(counts)).toBe('{"alerts/":1,"nodes/":3,"volumes/":1}');
  });

  it('keeps the largest paths and folds the rest into one line', () => {
    const counts = new TopLevelCounts();
    for (let i = 0; i < 30; i++) for (let k = 0; k <= i; k++) counts.add(`p${String(i).padStart(2, '0')}/`);
    const { rows, others } = counts.summary(3);
    expect(rows).toEqual([['p27/', 28], ['p28/', 29], ['p29/', 30]]);
    expect(others).toEqual({ paths: 27, keys: (27 * 28) / 2 });
    // --json shows the default 20 largest, and the others under one name.
    const json = counts.toJSON();
    expect(Object.keys(json)).toHaveLength(21);
    expect(json['(10 other paths)']).toBe(55);
  });

  it('holds a bounded number of paths on a flat keyspace, and still counts every key', () => {
    const counts = new TopLevelCounts(100);
    counts.add('big/');
    counts.add('big/');
    for (let i = 0; i < 100_000; i++) counts.add(`key-${i}`);
    const { rows, others } = counts.summary(20);
    expect(rows).toHaveLength(20);
    expect(rows).toContainEqual(['big/', 2]);
    expect(others?.paths).toBe(100_000 - 19);
    expect(rows.reduce((n, [, keys]) => n + keys, 0) + (others?.keys ?? 0)).toBe(100_002);
    // Bounded: what is held is the map, never more than its capacity.
    expect((counts as unknown as { counts: Map<string, number> }).counts.size).toBeLessThanOrEqual(100);
  });
});

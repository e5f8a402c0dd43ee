import { describe, expect, it } from 'vitest';
import type { KvRecord } from '../../src/formats/record.js';
import { SequenceDigest, SetDigest } from '../../src/formats/set-digest.js';
import { KeyScope } from '../../src/restore/key-scope.js';
import { planRestore, type RestorePlan } from '../../src/restore/plan.js';
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

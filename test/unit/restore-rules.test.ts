import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { freshnessOf, rankDumps } from '../../src/formats/dump-freshness.js';
import { SetDigest } from '../../src/formats/set-digest.js';
import { guardScope } from '../../src/restore/guard.js';
import { keyScopeFor } from '../../src/restore/key-scope.js';
import { confirmDuplicate, KeyFingerprints } from '../../src/restore/key-set.js';
import { showKey } from '../../src/restore/plan.js';
import { ScopeNotEmptyError, UsageError } from '../../src/util/errors.js';

describe('the scope rule, in one place', () => {
  it('puts PX dump keys under pwx/<cluster-id>/, the empty key at the domain itself', () => {
    const scope = keyScopeFor({ relative: true, takenFrom: '' }, { clusterId: 'c1' }, 'etcd');
    expect(scope.scope.toString()).toBe('pwx/c1/');
    expect(scope.map(Buffer.from('nodes/n1'))?.toString()).toBe('pwx/c1/nodes/n1');
    expect(scope.map(Buffer.from(''))?.toString()).toBe('pwx/c1/');
  });

  it('takes --prefix relative or absolute for a dump, and needs a cluster id', () => {
    for (const prefix of ['nodes/', 'pwx/c1/nodes/']) {
      const scope = keyScopeFor({ relative: true, takenFrom: '' }, { clusterId: 'c1', prefix }, 'etcd');
      expect(scope.scope.toString()).toBe('pwx/c1/nodes/');
      expect(scope.map(Buffer.from('volumes/v1'))).toBeUndefined();
    }
    expect(() => keyScopeFor({ relative: true, takenFrom: '' }, {}, 'etcd')).toThrow(UsageError);
  });

  it('merges repeated slashes of dump keys only for Consul, as Portworx\'s Consul client does', () => {
    const consul = keyScopeFor({ relative: true, takenFrom: '' }, { clusterId: 'c1' }, 'consul');
    expect(consul.map(Buffer.from('a//b///c'))?.toString()).toBe('pwx/c1/a/b/c');
    expect(consul.map(Buffer.from('/x'))?.toString()).toBe('pwx/c1/x');
    const etcd = keyScopeFor({ relative: true, takenFrom: '' }, { clusterId: 'c1' }, 'etcd');
    expect(etcd.map(Buffer.from('a//b'))?.toString()).toBe('pwx/c1/a//b');
    // Whole-key artifacts keep their keys, whatever the target.
    const exported = keyScopeFor({ relative: false, takenFrom: 'pwx/c1/' }, {}, 'consul');
    expect(exported.map(Buffer.from('pwx/c1/a//b'))?.toString()).toBe('pwx/c1/a//b');
  });

  it('keeps whole keys where they were taken from, re-rooted by --to-prefix', () => {
    const scope = keyScopeFor({ relative: false, takenFrom: 'pwx/c1/' }, { toPrefix: 'drill/' }, 'etcd');
    expect(scope.map(Buffer.from('pwx/c1/x'))?.toString()).toBe('drill/x');
    expect(scope.map(Buffer.from('pwx/c10/x'))).toBeUndefined();
  });

  it('holds a key only when, read as a path, it stays inside the scope', () => {
    const scope = keyScopeFor({ relative: false, takenFrom: 'pwx/c1/' }, {}, 'etcd');
    expect(scope.holds(Buffer.from('pwx/c1/a/../b'))).toBe(true);
    expect(scope.holds(Buffer.from('pwx/c1/a/../../c2/x'))).toBe(false);
    expect(scope.holds(Buffer.from('pwx/c1/../c2'))).toBe(false);
    expect(scope.holds(Buffer.from('pwx/c2/x'))).toBe(false);
  });
});

describe('the guard', () => {
  const subject = { target: 'etcd:http://x', scope: 'pwx/c1/' };

  it('lets an empty scope through, stops a full one without --force (exit 3), replaces it with --force', () => {
    expect(guardScope({ count: 0, examples: [] }, false, subject)).toBe('empty');
    expect(() => guardScope({ count: 2, examples: ['pwx/c1/a'] }, false, subject)).toThrow(ScopeNotEmptyError);
    expect(guardScope({ count: 2, examples: ['pwx/c1/a'] }, true, subject)).toBe('replace');
  });

  it('never deletes a scope that does not end at a path boundary', () => {
    expect(() => guardScope({ count: 1, examples: ['pwx/c1x'] }, true, { ...subject, scope: 'pwx/c1' })).toThrow(/would also delete neighbouring keys/);
  });

  it('tells a drill to clear its scratch scope, not to --force', () => {
    expect(() => guardScope({ count: 1, examples: ['d/x'] }, false, { ...subject, scope: 'd/', drill: true })).toThrow(/a drill never overwrites/);
  });
});

describe('duplicate keys in bounded memory', () => {
  it('flags a key seen twice, and only then', () => {
    const prints = new KeyFingerprints();
    let flagged = 0;
    for (let i = 0; i < 200_000; i++) if (prints.add(Buffer.from(`pwx/c1/k/${i}`))) flagged++;
    expect(flagged).toBe(0);
    expect(prints.suspects.size).toBe(0);
    expect(prints.add(Buffer.from('pwx/c1/k/77'))).toBe(true);
    expect(prints.suspects.size).toBe(1);
  });

  it('confirms a suspect by the keys themselves, naming both records', async () => {
    const prints = new KeyFingerprints();
    const keys = ['a', 'b', 'c', 'b'].map((k) => Buffer.from(k));
    for (const key of keys) prints.add(key);
    async function* again(): AsyncIterable<{ key: Buffer; index: number; original: Buffer }> {
      for (const [index, key] of keys.entries()) yield { key, index, original: key };
    }
    const duplicate = await confirmDuplicate(again(), prints.suspects, 'x');
    expect(duplicate?.key.toString()).toBe('b');
    expect([duplicate?.first.index, duplicate?.second.index]).toEqual([1, 3]);
  });

  it('finds no duplicate among distinct keys that happen to be suspects', async () => {
    async function* again(): AsyncIterable<{ key: Buffer; index: number; original: Buffer }> {
      for (const [index, k] of ['a', 'b'].entries()) yield { key: Buffer.from(k), index, original: Buffer.from(k) };
    }
    // Every fingerprint a suspect: the second look still compares keys, so nothing is refused.
    const all = new Set<number>();
    const prints = new KeyFingerprints();
    prints.add(Buffer.from('a'));
    prints.add(Buffer.from('a'));
    prints.add(Buffer.from('b'));
    prints.add(Buffer.from('b'));
    for (const id of prints.suspects) all.add(id);
    expect(await confirmDuplicate(again(), all, 'x')).toBeUndefined();
  });
});

describe('SetDigest', () => {
  it('is the sum mod 2^256 of sha256(u32be len key, key, u32be len value, value), in any order', () => {
    const pairs = Array.from({ length: 500 }, (_, i) => [randomBytes(i % 40), randomBytes(i % 9 === 0 ? 9000 : i % 300)] as const);
    let sum = 0n;
    const length = Buffer.alloc(4);
    for (const [key, value] of pairs) {
      const hash = createHash('sha256');
      length.writeUInt32BE(key.length);
      hash.update(length).update(key);
      length.writeUInt32BE(value.length);
      hash.update(length).update(value);
      sum = (sum + BigInt(`0x${hash.digest('hex')}`)) % (1n << 256n);
    }
    const forward = new SetDigest();
    const backward = new SetDigest();
    for (const [key, value] of pairs) forward.add(key, value);
    for (const [key, value] of [...pairs].reverse()) backward.add(key, value);
    expect(forward.digest()).toBe(sum.toString(16).padStart(64, '0'));
    expect(backward.digest()).toBe(forward.digest());
    expect(forward.count).toBe(500);
  });
});

describe('freshest dump by content', () => {
  const dump = (name: string, kvdb: number, modified: number, time?: string): Parameters<typeof rankDumps<string>>[0][number] => ({
    item: name,
    name,
    freshness: freshnessOf(kvdb, modified),
    ...(time ? { time: new Date(time) } : {}),
  });

  it('ranks dumps taken from etcd (KVDBIndex 0) by ModifiedIndex, whatever their names say', () => {
    const ranking = rankDumps([dump('new-name', 0, 10, '2030-01-01T00:00:00Z'), dump('old-name', 0, 42, '2018-01-01T00:00:00Z')]);
    expect(ranking?.chosen.item).toBe('old-name');
    expect(ranking?.why).toBe('highest ModifiedIndex 42');
  });

  it('ranks dumps taken from Consul by KVDBIndex, and breaks an exact tie by the time in the name', () => {
    expect(rankDumps([dump('a', 1104, 2000), dump('b', 1125, 3)])?.why).toBe('highest KVDBIndex 1125');
    const tie = rankDumps([dump('early', 7, 0, '2018-05-25T22:59:08Z'), dump('late', 7, 0, '2018-05-25T23:30:00Z')]);
    expect(tie?.chosen.item).toBe('late');
    expect(tie?.why).toBe('KVDBIndex 7 ties with early; the later time in its name breaks the tie');
  });
});

describe('keys in messages', () => {
  it('shows printable keys as text, others as hex, shortened', () => {
    expect(showKey(Buffer.from('pwx/c1/a'))).toBe('"pwx/c1/a"');
    expect(showKey(Buffer.from([0xff, 0x00]))).toBe('hex:ff00');
    expect(showKey(Buffer.from('a\nb'))).toBe('hex:610a62');
    expect(showKey(Buffer.alloc(200, 0x61))).toHaveLength(60);
  });
});

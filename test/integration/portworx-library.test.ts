import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr } from '../harness/cli.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { pxContent, pxDump, pxEndpoint, pxEnumerate, pxkvdbBinary, pxPut, type PxBackend, type PxOp, type PxPair } from '../harness/pxkvdb.js';

/*
 * kvdr against dumps made by Portworx's own KVDB library (test/tools/pxkvdb): the library writes the
 * source cluster and Serialize()s it as a Portworx node does, kvdr restores the file, and the library's
 * Enumerate() reads the target back as Portworx will. What the library does that matters here (see
 * its etcd/v3/kv_etcd.go and consul/kv_consul.go): etcd dumps carry KVDBIndex 0 and each key's mod
 * revision; Consul dumps carry the list's index as KVDBIndex; the domain key itself is dumped as "";
 * its Consul client strips consecutive '/' from every key (domain + key), its etcd client does not.
 */

const BACKENDS: readonly PxBackend[] = ['etcd', 'consul'];

/** What a Portworx cluster keeps: the domain key itself, JSON, binary, empty and large values, a non-ASCII key. */
const DATASET: readonly PxOp[] = [
  { key: '', value: '{"clusterid":"domain key value"}' },
  { key: 'cluster/database', value: JSON.stringify({ Status: 2, Id: 'px-dr', NodeEntries: { n1: { Ip: '10.0.0.1' } } }) },
  { key: 'nodes/node-1/spec', value: Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 0x0a, 0x00]) },
  { key: 'alerts/empty', value: '' },
  { key: 'names/ünïcødé/名前', value: 'unicode key' },
  { key: 'storage/large', value: randomBytes(200_000) },
  { key: 'volumes/v1', value: 'created', op: 'create' },
  // Hidden (last element starts with '_'): the library never dumps it.
  { key: 'locks/_held', value: 'hidden' },
];

describe('dumps made by Portworx\'s kvdb library', () => {
  let etcd: Etcd3;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const clusters: string[] = [];

  /** A cluster id no other test uses, cleaned up in both stores afterwards. */
  const cluster = (label: string): string => {
    const id = uniqueName(label);
    clusters.push(id);
    return id;
  };
  const restore = (file: string, target: PxBackend, clusterId: string, ...extra: string[]): ReturnType<typeof kvdr> =>
    kvdr(['restore', '--kvdb_dump_file', file, '--target', pxEndpoint(target), '--cluster-id', clusterId, ...extra], env);
  const dumpFile = (time: string): string => join(dir, uniqueName('d'), `pwx_kvdb_${time}.dump`);

  beforeAll(async () => {
    await pxkvdbBinary(); // built once (about a minute) unless the cache has it
    etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    dir = await mkdtemp(join(tmpdir(), 'kvdr-pxlib-'));
    env = { KVDR_SAFETY_DIR: join(dir, 'safety') };
  }, 600_000);

  afterAll(async () => {
    for (const id of clusters) {
      await etcd.delete().prefix(`pwx/${id}`);
      await fetch(`${requireEnv('KVDR_CONSUL_ADDR')}/v1/kv/pwx/${id}?recurse`, { method: 'DELETE' });
    }
    etcd.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Every raw key under pwx/<id>/ with its value and indexes: equal states mean nothing was written. */
  async function scopeState(backend: PxBackend, id: string): Promise<unknown[]> {
    if (backend === 'etcd') {
      const response = await etcd.getAll().prefix(`pwx/${id}/`).exec();
      return response.kvs.map((kv) => [kv.key.toString('hex'), kv.value.toString('hex'), kv.mod_revision, kv.create_revision]);
    }
    const response = await fetch(`${requireEnv('KVDR_CONSUL_ADDR')}/v1/kv/pwx/${id}/?recurse`);
    if (response.status === 404) return [];
    const pairs = (await response.json()) as { Key: string; Value: string | null; ModifyIndex: number; CreateIndex: number; Flags: number }[];
    return pairs.map((p) => [p.Key, p.Value, p.ModifyIndex, p.CreateIndex, p.Flags]);
  }

  /** The raw value at exactly one key of the store (no prefix matching), or undefined. */
  async function rawValue(backend: PxBackend, key: string): Promise<Buffer | undefined> {
    if (backend === 'etcd') return (await etcd.get(key).buffer()) ?? undefined;
    const response = await fetch(`${requireEnv('KVDR_CONSUL_ADDR')}/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}?raw`);
    return response.status === 404 ? undefined : Buffer.from(await response.arrayBuffer());
  }

  /** Every raw key under a prefix (Consul ?keys, etcd keys-only range). */
  async function rawKeys(backend: PxBackend, prefix: string): Promise<string[]> {
    if (backend === 'etcd') return (await etcd.getAll().prefix(prefix).keys()).sort();
    const response = await fetch(`${requireEnv('KVDR_CONSUL_ADDR')}/v1/kv/${prefix}?keys`);
    return response.status === 404 ? [] : ((await response.json()) as string[]).sort();
  }

  /** A source cluster written through the library, and its dump. */
  async function dumpedCluster(backend: PxBackend, label: string, ops: readonly PxOp[], time = '2024-01-01T00:00:00Z'): Promise<{ file: string; pairs: PxPair[] }> {
    const source = cluster(label);
    await pxPut(backend, source, ops);
    const file = dumpFile(time);
    await mkdirFor(file);
    return { file, pairs: await pxDump(backend, source, file) };
  }

  describe('what the library writes (the facts kvdr relies on)', () => {
    it('etcd: KVDBIndex 0 on every pair, the mod revision in ModifiedIndex, "" for the domain key, // kept', async () => {
      const source = cluster('facts-etcd');
      await pxPut('etcd', source, [...DATASET, { key: 'a//b', value: 'slashes' }, { key: 'leased', value: 'ttl', ttl: 30 }]);
      const file = dumpFile('2024-01-01T00:00:00Z');
      await mkdirFor(file);
      const pairs = await pxDump('etcd', source, file);
      expect(pairs.every((p) => p.KVDBIndex === 0)).toBe(true);
      const raw = await etcd.get(`pwx/${source}/cluster/database`).exec();
      expect(pairs.find((p) => p.Key === 'cluster/database')?.ModifiedIndex).toBe(Number(raw.kvs[0]?.mod_revision));
      const keys = pairs.map((p) => p.Key);
      expect(keys).toContain('');
      expect(keys).toContain('a//b');
      expect(keys).not.toContain('locks/_held');
      // Not what one might expect: a key with a lease is dumped (while it lives), its TTL always 0.
      expect(pairs.find((p) => p.Key === 'leased')).toMatchObject({ TTL: 0 });
      expect(pairs.find((p) => p.Key === 'alerts/empty')?.Value).toBeNull();
    });

    it('Consul: the list index as KVDBIndex on every pair, "" for the domain key, // stripped', async () => {
      const source = cluster('facts-consul');
      await pxPut('consul', source, [...DATASET, { key: 'a//b', value: 'slashes' }, { key: 'leased', value: 'ttl', ttl: 30 }]);
      const file = dumpFile('2024-01-01T00:00:00Z');
      await mkdirFor(file);
      const pairs = await pxDump('consul', source, file);
      const listIndex = Number((await fetch(`${requireEnv('KVDR_CONSUL_ADDR')}/v1/kv/pwx/${source}/?recurse`)).headers.get('X-Consul-Index'));
      expect(new Set(pairs.map((p) => p.KVDBIndex))).toEqual(new Set([listIndex]));
      expect(Math.max(...pairs.map((p) => p.ModifiedIndex))).toBeLessThanOrEqual(listIndex);
      const keys = pairs.map((p) => p.Key);
      expect(keys).toContain('');
      expect(keys).toContain('a/b');
      expect(keys).not.toContain('a//b');
      expect(keys).not.toContain('locks/_held');
      expect(pairs.find((p) => p.Key === 'leased')).toMatchObject({ TTL: 0 });
    });
  });

  describe.each(BACKENDS)('a dump taken from %s', (from) => {
    it.each(BACKENDS)('restores byte-exact into %s, as the library reads it back', async (to) => {
      const { file, pairs } = await dumpedCluster(from, `exact-${from}`, DATASET);
      expect(pairs.map((p) => p.Key)).toContain('');
      const target = cluster(`exact-${from}-${to}`);
      const { code, stderr } = await restore(file, to, target);
      expect(stderr).not.toMatch(/kvdr: /);
      expect(code).toBe(ExitCode.Ok);
      const restored = await pxEnumerate(to, target);
      expect(pxContent(restored)).toEqual(pxContent(pairs));
      expect(restored.length).toBe(pairs.length);
    });
  });

  describe.each(BACKENDS)('into %s with keys already in the scope', (to) => {
    it('aborts with exit 3 and writes nothing; --force replaces exactly the scope', async () => {
      const { file, pairs } = await dumpedCluster('etcd', 'abort-src', DATASET);
      const target = cluster(`abort-${to}`);
      const neighbour = cluster(`abort-${to}-nb`);
      await pxPut(to, target, [{ key: 'existing/a', value: 'keep me' }]);
      await pxPut(to, neighbour, [{ key: 'outside', value: 'not in scope' }]);
      const before = await scopeState(to, target);
      const neighbourBefore = await scopeState(to, neighbour);

      const aborted = await restore(file, to, target);
      expect(aborted.code).toBe(ExitCode.ScopeNotEmpty);
      expect(aborted.stderr).toContain(`pwx/${target}/existing/a`);
      expect(await scopeState(to, target)).toEqual(before);

      const forced = await restore(file, to, target, '--force');
      expect(forced.stderr).not.toMatch(/kvdr: /);
      expect(forced.code).toBe(ExitCode.Ok);
      expect(pxContent(await pxEnumerate(to, target))).toEqual(pxContent(pairs));
      expect(await scopeState(to, neighbour)).toEqual(neighbourBefore);
    });

    it('counts a value at the domain key alone as a key in the scope', async () => {
      const { file } = await dumpedCluster('consul', 'domain-only-src', DATASET);
      const target = cluster(`domain-only-${to}`);
      await pxPut(to, target, [{ key: '', value: 'only the domain key' }]);
      const before = await scopeState(to, target);
      const aborted = await restore(file, to, target);
      expect(aborted.code).toBe(ExitCode.ScopeNotEmpty);
      expect(aborted.stderr).toContain(`pwx/${target}/`);
      expect(await scopeState(to, target)).toEqual(before);
    });
  });

  /**
   * Three dumps of one cluster over time, named so their times lie (the oldest content gets the newest
   * name): the freshest content must win, and kvdr must say which signal decided.
   */
  describe.each([
    ['etcd', 'consul', 'ModifiedIndex'],
    ['consul', 'etcd', 'KVDBIndex'],
  ] as const)('choosing the freshest of dumps taken from %s (restored into %s)', (from, to, signal) => {
    it(`goes by ${signal}, not by the times in the file names`, async () => {
      const source = cluster(`fresh-${from}`);
      const folder = join(dir, uniqueName('fresh'));
      await mkdirFor(join(folder, 'x'));
      const names = ['pwx_kvdb_2031-01-01T00:00:00Z.dump', 'pwx_kvdb_2030-01-01T00:00:00Z.dump', 'pwx_kvdb_2029-01-01T00:00:00Z.dump'];
      const steps: PxOp[][] = [
        [{ key: '', value: 'domain v1' }, { key: 'state', value: 'v1' }, { key: 'only/first', value: 'deleted later' }],
        [{ key: 'state', value: 'v2' }, { key: 'nodes/n2', value: 'joined' }],
        [{ key: 'state', value: 'v3' }, { key: 'only/first', op: 'delete' }, { key: 'only/last', value: 'added last' }],
      ];
      const dumps: PxPair[][] = [];
      for (const [i, ops] of steps.entries()) {
        await pxPut(from, source, ops);
        dumps.push(await pxDump(from, source, join(folder, names[i] as string)));
      }
      const newest = dumps[2] as PxPair[];
      expect(pxContent(newest).get('state')).toBe(Buffer.from('v3').toString('hex'));

      const target = cluster(`fresh-${from}-${to}`);
      const { code, stderr } = await restore(folder, to, target);
      expect(code).toBe(ExitCode.Ok);
      expect(stderr).toContain(`chose ${names[2]}`);
      expect(stderr).toContain(signal);
      expect(pxContent(await pxEnumerate(to, target))).toEqual(pxContent(newest));
    });
  });

  describe.each(BACKENDS)('the domain key ("Key": "") restored into %s', (to) => {
    it('lands at pwx/<cluster>/ exactly, not at pwx/<cluster>', async () => {
      const value = Buffer.from('{"clusterid":"at the domain key"}');
      const { file, pairs } = await dumpedCluster(to === 'etcd' ? 'consul' : 'etcd', 'domain-src', [{ key: '', value }, { key: 'child', value: 'c' }]);
      expect(pairs.find((p) => p.Key === '')?.Value).toBe(value.toString('base64'));
      const target = cluster(`domain-${to}`);
      const { code, stderr } = await restore(file, to, target);
      expect(stderr).not.toMatch(/kvdr: /);
      expect(code).toBe(ExitCode.Ok);
      expect(await rawValue(to, `pwx/${target}/`)).toEqual(value);
      expect(await rawValue(to, `pwx/${target}`)).toBeUndefined();
      expect(await rawKeys(to, `pwx/${target}/`)).toEqual([`pwx/${target}/`, `pwx/${target}/child`]);
      expect((await pxEnumerate(to, target)).find((p) => p.Key === '')?.Value).toBe(value.toString('base64'));
    });
  });

  describe('keys with consecutive slashes (from an etcd-taken dump)', () => {
    const SLASHED: PxOp[] = [
      { key: 'a//b', value: 'two slashes' },
      { key: 'x//y///z', value: 'more slashes' },
      { key: 'plain', value: 'no slashes' },
    ];

    it('land with single slashes in Consul, where Portworx\'s Consul client looks', async () => {
      const { file, pairs } = await dumpedCluster('etcd', 'slash-src', SLASHED);
      expect(pairs.map((p) => p.Key)).toEqual(['a//b', 'plain', 'x//y///z']);
      const target = cluster('slash-consul');
      const { code, stderr } = await restore(file, 'consul', target);
      expect(stderr).not.toMatch(/kvdr: /);
      expect(code).toBe(ExitCode.Ok);
      expect(await rawKeys('consul', `pwx/${target}/`)).toEqual([`pwx/${target}/a/b`, `pwx/${target}/plain`, `pwx/${target}/x/y/z`]);
      const read = pxContent(await pxEnumerate('consul', target));
      expect(read).toEqual(
        new Map([
          ['a/b', Buffer.from('two slashes').toString('hex')],
          ['plain', Buffer.from('no slashes').toString('hex')],
          ['x/y/z', Buffer.from('more slashes').toString('hex')],
        ]),
      );
    });

    it('a leading slash too: "/lead" is pwx/<cluster>//lead, which Portworx\'s Consul client reads at pwx/<cluster>/lead', async () => {
      const { file, pairs } = await dumpedCluster('etcd', 'lead-src', [{ key: '/lead', value: 'leading slash' }]);
      expect(pairs.map((p) => p.Key)).toEqual(['/lead']);
      const target = cluster('lead-consul');
      const { code, stderr } = await restore(file, 'consul', target);
      expect(stderr).not.toMatch(/kvdr: /);
      expect(code).toBe(ExitCode.Ok);
      expect(await rawKeys('consul', `pwx/${target}/`)).toEqual([`pwx/${target}/lead`]);
      expect(pxContent(await pxEnumerate('consul', target))).toEqual(new Map([['lead', Buffer.from('leading slash').toString('hex')]]));
    });

    it('stay as they are in etcd, whose Portworx client does not strip them', async () => {
      const { file, pairs } = await dumpedCluster('etcd', 'slash-etcd-src', SLASHED);
      const target = cluster('slash-etcd');
      const { code } = await restore(file, 'etcd', target);
      expect(code).toBe(ExitCode.Ok);
      expect(await rawKeys('etcd', `pwx/${target}/`)).toEqual([`pwx/${target}/a//b`, `pwx/${target}/plain`, `pwx/${target}/x//y///z`]);
      expect(pxContent(await pxEnumerate('etcd', target))).toEqual(pxContent(pairs));
    });

    it('a dump holding both dup//key and dup/key is refused before any write into Consul (exit 4, both named), even with --force', async () => {
      const { file, pairs } = await dumpedCluster('etcd', 'dup-src', [
        { key: 'dup//key', value: 'first' },
        { key: 'dup/key', value: 'second' },
        { key: 'other', value: 'fine' },
      ]);
      expect(pairs.map((p) => p.Key)).toEqual(['dup//key', 'dup/key', 'other']);
      const target = cluster('dup-consul');
      await pxPut('consul', target, [{ key: 'existing', value: 'must survive' }]);
      const before = await scopeState('consul', target);
      for (const extra of [[], ['--force']]) {
        const { code, stderr } = await restore(file, 'consul', target, ...extra);
        expect(code, extra.join(' ')).toBe(ExitCode.Integrity);
        expect(stderr).toContain('dup//key');
        expect(stderr).toContain('dup/key');
        expect(await scopeState('consul', target)).toEqual(before);
      }
      // An empty target stays empty.
      const empty = cluster('dup-consul-empty');
      const { code } = await restore(file, 'consul', empty);
      expect(code).toBe(ExitCode.Integrity);
      expect(await scopeState('consul', empty)).toEqual([]);
    });
  });
});

async function mkdirFor(file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
}

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContinuousJob } from '../../src/backup/continuous/continuous-job.js';
import type { KvdrConfig } from '../../src/config/schema.js';
import { readChain } from '../../src/repository/chain-reader.js';
import { chainPath, listSegments } from '../../src/repository/chains.js';
import { readCatalog } from '../../src/repository/catalog.js';
import { FsStore } from '../../src/repository/fs-store.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { kvdr } from '../harness/cli.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { consulPut } from '../harness/consul-instance.js';
import { fillEtcd } from '../harness/etcd-fill.js';
import { consulStateNow, etcdPrefixAt, randomConsulWrites, randomEtcdWrites, type WrittenChange } from '../harness/continuous.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { waitFor } from '../harness/wait.js';

/** Each chain of a job: its base's revision and where its segments end. */
async function chains(store: FsStore, job: string): Promise<{ base: string; baseRevision: number; last: number }[]> {
  const segments = await listSegments(store, job);
  const out = [];
  for (const base of (await readCatalog(store, { job })).filter((m) => m.details['role'] === 'base')) {
    const baseRevision = base.revision ?? base.raftIndex ?? 0;
    const chain = readChain(store, chainPath(base.id, segments.get(base.id) ?? [], baseRevision + 1), baseRevision);
    for await (const _ of chain.events);
    out.push({ base: base.id, baseRevision, last: chain.end().revision });
  }
  return out;
}

describe('a new base while changes keep coming: the old chain ends exactly where the new one starts', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-rebase-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const setup = async (kind: 'etcd' | 'consul', prefix: string): Promise<{ config: KvdrConfig; configPath: string; store: FsStore; runner: ContinuousJob }> => {
    const repo = join(dir, `repo-${kind}`);
    const raw = {
      sources: [kind === 'etcd' ? { name: 's', type: 'etcd', endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')], prefix } : { name: 's', type: 'consul', endpoints: [requireEnv('KVDR_CONSUL_ADDR')], prefix }],
      repositories: [{ name: 'local', type: 'fs', path: repo }],
      jobs: [{ name: `re-${kind}`, source: 's', kind: `${kind}-continuous`, schedule: '0 0 1 1 *', repository: 'local', continuous: { segmentSeconds: 0.3, mergeAfterMinutes: 0, spoolDir: join(dir, `spool-${kind}`) } }],
    };
    const config = testConfig(raw);
    const configPath = join(dir, `${kind}.yaml`);
    await writeFile(configPath, JSON.stringify(raw));
    const runner = new ContinuousJob({ config, job: config.jobs[0] as KvdrConfig['jobs'][number], logger: quietLogger, record: () => Promise.resolve() });
    return { config, configPath, store: new FsStore({ path: repo }), runner };
  };

  it('etcd: the base is read at the revision the log reached (several pages, writes going on), and restores on both sides match etcd', async () => {
    const etcd: Etcd3 = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    const prefix = `${uniqueName('rebase')}/`;
    // More than one page of the base (the first page is 1,000 keys), so its later pages are read while writes go on.
    await fillEtcd(etcd, `${prefix}fill/`, 2500, 64);
    const { configPath, store, runner } = await setup('etcd', prefix);
    runner.start();
    let written: WrittenChange[];
    try {
      await waitFor(async () => (await chains(store, 're-etcd')).length === 1, 'a base');
      const writing = randomEtcdWrites(etcd, prefix, 4_000, 60);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await runner.rebase();
      written = await writing;
      const last = (written.at(-1) as WrittenChange).revision;
      await waitFor(async () => (await chains(store, 're-etcd')).some((c) => c.last >= last), 'the new chain to reach the writes');
    } finally {
      await runner.stop();
    }
    const [first, second] = await chains(store, 're-etcd');
    expect(first?.last).toBe(second?.baseRevision);
    const boundary = second?.baseRevision as number;
    for (const revision of [boundary - 1, boundary, boundary + 1, (written.at(-1) as WrittenChange).revision]) {
      const scratch = `${uniqueName('rb')}/`;
      const result = await kvdr(['--config', configPath, 'restore-from-s3', '--at', `rev:${revision}`, '--job', 're-etcd', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', scratch]);
      expect(result.code, result.stderr).toBe(0);
      expect(await etcdPrefixAt(etcd, Buffer.from(scratch)), `revision ${revision}`).toEqual(await etcdPrefixAt(etcd, Buffer.from(prefix), revision));
    }
    etcd.close();
  }, 120_000);

  it('Consul: the changes made while the new base was read end the old chain, at exactly the base\'s index', async () => {
    const consul = requireEnv('KVDR_CONSUL_ADDR');
    const prefix = `${uniqueName('crebase')}/`;
    await consulPut(consul, `${prefix}seed`, 'seed');
    const { configPath, store, runner } = await setup('consul', prefix);
    runner.start();
    let states: Awaited<ReturnType<typeof randomConsulWrites>>;
    try {
      await waitFor(async () => (await chains(store, 're-consul')).length === 1, 'a base');
      const writing = randomConsulWrites(consul, prefix, 4_000, 30);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      await runner.rebase();
      states = await writing;
      const last = (await consulStateNow(consul, prefix)).index;
      await waitFor(async () => (await chains(store, 're-consul')).some((c) => c.last >= last), 'the new chain to reach the writes');
    } finally {
      await runner.stop();
    }
    const [first, second] = await chains(store, 're-consul');
    expect(first?.last).toBe(second?.baseRevision);
    // Every recorded state restores exactly, whichever chain holds it.
    for (const point of states.filter((_, i) => i % 4 === 0)) {
      const scratch = `${uniqueName('crb')}/`;
      const result = await kvdr(['--config', configPath, 'restore-from-s3', '--at', `index:${point.index}`, '--job', 're-consul', '--target', `consul:${consul}`, '--to-prefix', scratch]);
      expect(result.code, result.stderr).toBe(0);
      expect((await consulStateNow(consul, scratch)).state, `index ${point.index}`).toEqual(point.state);
    }
  }, 180_000);
});

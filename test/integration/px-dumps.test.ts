import { copyFile, mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCatalog } from '../../src/repository/catalog.js';
import { FsStore } from '../../src/repository/fs-store.js';
import type { Manifest } from '../../src/repository/manifest.js';
import { backupScheduler } from '../../src/scheduler/service.js';
import type { KvdrConfig } from '../../src/config/schema.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { kvdr } from '../harness/cli.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { etcdPairs } from '../harness/etcd-state.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { PROJECT_ROOT } from '../harness/stack.js';

const OLDER = `${PROJECT_ROOT}test/fixtures/pxdump/pwx_kvdb_2018-05-25T22:57:41Z.dump`;
const NEWER = `${PROJECT_ROOT}test/fixtures/pxdump/pwx_kvdb_2018-05-25T22:59:08Z.dump`;

describe('px-dumps jobs and restoring the freshest stored dump', () => {
  let bucket: TestBucket;
  let dir: string;
  let cluster: string;
  const env = (): NodeJS.ProcessEnv => ({ AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'), AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY') });

  async function nodeConfig(node: string, stableSeconds = 0): Promise<{ config: string; dumps: string }> {
    const dumps = join(dir, node);
    await mkdir(dumps, { recursive: true });
    const config = join(dir, `${node}-${stableSeconds}.yaml`);
    await writeFile(
      config,
      `sources: [{name: px, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], clusterId: ${cluster}}]\n` +
        `repositories: [{name: dr, type: s3, bucket: ${bucket.name}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true}]\n` +
        `jobs: [{name: dumps, source: px, kind: px-dumps, schedule: "*/5 * * * *", repository: dr}]\n` +
        `pxDumps: {dirs: [${dumps}], node: ${node}, stableSeconds: ${stableSeconds}}\n`,
    );
    return { config, dumps };
  }
  const backup = async (config: string): Promise<{ ids: string[]; summary: string }> => {
    const { code, stdout, stderr } = await kvdr(['--config', config, 'backup', 'dumps'], env());
    expect(code, stderr).toBe(0);
    return { ids: stdout.trim().split('\n').filter((l) => l !== ''), summary: stderr.trim().split('\n').at(-1) ?? '' };
  };

  beforeAll(async () => {
    bucket = await createTestBucket('px-dumps');
    dir = await mkdtemp(join(tmpdir(), 'kvdr-px-dumps-'));
    cluster = uniqueName('px');
  });
  afterAll(async () => {
    await bucket.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('uploads each new dump once, by content, waits for dumps still being written, and leaves the files', async () => {
    const a = await nodeConfig('node-a');
    // Node a's newest-looking file name holds the older dump: names are not trusted.
    await copyFile(OLDER, join(a.dumps, 'pwx_kvdb_2018-05-26T00:00:00Z.dump'));
    const first = await backup(a.config);
    expect(first.ids).toHaveLength(1);
    expect(first.summary).toBe('1 new dumps stored, 0 already in the repository, 0 still being written');

    await copyFile(OLDER, join(a.dumps, 'pwx_kvdb_2018-05-26T01:00:00Z.dump')); // same bytes, new name
    expect((await backup(a.config)).summary).toBe('0 new dumps stored, 2 already in the repository, 0 still being written');

    const hourAgo = new Date(Date.now() - 2 * 3600_000);
    for (const name of await readdir(a.dumps)) await utimes(join(a.dumps, name), hourAgo, hourAgo);
    const settling = await nodeConfig('node-a', 3600);
    await copyFile(NEWER, join(settling.dumps, 'pwx_kvdb_2018-05-25T22:59:08Z.dump'));
    const now = new Date();
    await utimes(join(settling.dumps, 'pwx_kvdb_2018-05-25T22:59:08Z.dump'), now, now);
    expect((await backup(settling.config)).summary).toBe('0 new dumps stored, 2 already in the repository, 1 still being written');
    await rm(join(settling.dumps, 'pwx_kvdb_2018-05-25T22:59:08Z.dump'));
    expect((await readdir(a.dumps)).length).toBe(2);

    const b = await nodeConfig('node-b');
    await copyFile(NEWER, join(b.dumps, 'pwx_kvdb_2018-05-25T22:59:08Z.dump'));
    expect((await backup(b.config)).ids).toHaveLength(1);

    const listed = JSON.parse((await kvdr(['--config', b.config, 'backups', 'list', '--kind', 'px-dumps', '--json'], env())).stdout) as Manifest[];
    expect(listed.map((m) => [m.details['node'], m.records, m.details['maxKvdbIndex'], m.source.clusterId])).toEqual([
      ['node-a', 35, 1104, cluster],
      ['node-b', 46, 1125, cluster],
    ]);
    expect(listed[0]?.scope.prefix).toBe(`pwx/${cluster}/`);
  });

  it('stores the good dumps when another is unreadable, then fails the run naming the bad one', async () => {
    const c = await nodeConfig('node-c');
    const record = (key: string, index: number): string => JSON.stringify({ Key: key, Value: Buffer.from(key).toString('base64'), Action: 0, TTL: 0, KVDBIndex: index, CreatedIndex: index, ModifiedIndex: index, Lock: null });
    await writeFile(join(c.dumps, 'pwx_kvdb_2018-05-25T00:00:00Z.dump'), `[${record('a', 1)},{"Key":`); // cut short
    await writeFile(join(c.dumps, 'pwx_kvdb_2018-05-27T00:00:00Z.dump'), `[${record(`only-on-${cluster}`, 7)}]`);
    const { code, stdout, stderr } = await kvdr(['--config', c.config, '--log-level', 'silent', 'backup', 'dumps'], env());
    expect(code).toBe(1);
    expect(stdout.trim()).toMatch(/^\d{8}T\d{6}Z-dumps-[0-9a-f]{6}$/);
    expect(stderr.trim().split('\n').at(-1)).toMatch(/^kvdr: 1 PX dump\(s\) could not be collected \(\S+pwx_kvdb_2018-05-25T00:00:00Z\.dump: .+\); 1 others were stored, and the next run tries again$/);
    const listed = JSON.parse((await kvdr(['--config', c.config, 'backups', 'list', '--job', 'dumps', '--json'], env())).stdout) as Manifest[];
    expect(listed.filter((m) => m.details['node'] === 'node-c').map((m) => m.details['file'])).toEqual(['pwx_kvdb_2018-05-27T00:00:00Z.dump']);
  });

  it('restore-from-s3 --latest --kind px-dumps restores the dump with the highest KVDBIndex and says why', async () => {
    const { config } = await nodeConfig('restorer');
    const { code, stderr } = await kvdr(['--config', config, 'restore-from-s3', '--latest', '--kind', 'px-dumps', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`], env());
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/chose \S+ \(pwx_kvdb_2018-05-25T22:59:08Z\.dump from node-b\): highest KVDBIndex 1125 \(next: pwx_kvdb_2018-05-26T00:00:00Z\.dump from node-a at 1104\)/);
    const etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    try {
      expect((await etcdPairs(etcd, `pwx/${cluster}/`)).size).toBe(46);
    } finally {
      etcd.close();
    }
  });
});

describe('px-dumps jobs in the service', () => {
  /** Three dumps (one unreadable) and a job that keeps only the newest backup. */
  async function setUp(dir: string): Promise<KvdrConfig> {
    const dumps = join(dir, 'dumps');
    await mkdir(dumps);
    await copyFile(OLDER, join(dumps, 'pwx_kvdb_2018-05-25T22:57:41Z.dump'));
    await copyFile(NEWER, join(dumps, 'pwx_kvdb_2018-05-25T22:59:08Z.dump'));
    await writeFile(join(dumps, 'pwx_kvdb_2018-05-26T00:00:00Z.dump'), '[{"Key":'); // never readable
    return testConfig({
      sources: [{ name: 'px', type: 'etcd', endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')], clusterId: 'c1' }],
      repositories: [{ name: 'local', type: 'fs', path: join(dir, 'repo') }],
      jobs: [{ name: 'dumps', source: 'px', kind: 'px-dumps', schedule: '0 0 1 1 *', repository: 'local', retries: 0, retention: { keepLast: 1, daily: 0, weekly: 0, monthly: 0, minDays: 0 } }],
      pxDumps: { dirs: [dumps], node: 'n1', stableSeconds: 0 },
    });
  }
  const storedFiles = async (dir: string): Promise<unknown[]> => (await readCatalog(new FsStore({ path: join(dir, 'repo') }))).map((m) => m.details['file']);

  it('leave retention to the leader when they run on a follower', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvdr-px-follower-'));
    try {
      const follower = { role: () => 'follower' as const, isLeader: () => false, onChange: () => undefined, claimSlot: () => Promise.resolve(false), close: () => Promise.resolve() };
      const scheduler = backupScheduler(await setUp(dir), quietLogger, { leadership: follower, lastSuccess: () => Promise.resolve(new Date()) });
      await scheduler.start(); // px-dumps run at once on every replica: this node may hold a dump nobody stored
      await scheduler.close(); // waits for that run
      expect(await storedFiles(dir)).toEqual(['pwx_kvdb_2018-05-25T22:57:41Z.dump', 'pwx_kvdb_2018-05-25T22:59:08Z.dump']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('apply retention even when a dump cannot be read, then report the run as failed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvdr-px-retention-'));
    try {
      const config = await setUp(dir);
      const scheduler = backupScheduler(config, quietLogger, { lastSuccess: () => Promise.resolve(new Date()) });
      await scheduler.start(); // px-dumps run at once on every replica: this node may hold a dump nobody stored
      await scheduler.close(); // waits for that run
      expect(scheduler.status()[0]?.lastRun).toMatchObject({ ok: false, error: expect.stringMatching(/^1 PX dump\(s\) could not be collected .+; 2 others were stored/) as unknown });
      // Both readable dumps were stored, and retention (keep the newest one) ran all the same.
      expect(await storedFiles(dir)).toEqual(['pwx_kvdb_2018-05-25T22:59:08Z.dump']);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});


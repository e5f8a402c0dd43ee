import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/audit-log.js';
import { ContinuousJob } from '../../src/backup/continuous/continuous-job.js';
import type { KvdrConfig } from '../../src/config/schema.js';
import type { ObjectStore } from '../../src/repository/object-store.js';
import { readCatalog } from '../../src/repository/catalog.js';
import { openStore } from '../../src/repository/open-store.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr } from '../harness/cli.js';
import { stopServer } from '../harness/child-process.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { chainEvents, randomEtcdWrites, startServe, type WrittenChange } from '../harness/continuous.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { freePorts } from '../harness/ports.js';
import { oneLeader, replicaRole } from '../harness/replicas.js';
import { serviceControl } from '../harness/stack.js';
import { trailEvents } from '../harness/trail.js';
import { waitFor } from '../harness/wait.js';

/** The chain, event by event, is exactly the writes made after its base: no gap, no overlap, no reorder. */
function expectExactly(events: Awaited<ReturnType<typeof chainEvents>>, written: readonly WrittenChange[]): void {
  const changes = written.filter((w) => w.revision > events.baseRevision);
  expect(events.events.map((e) => `${e.op}@${e.revision}:${e.key.toString('hex')}`)).toEqual(changes.map((w) => `${w.op}@${w.revision}:${w.key.toString('hex')}`));
}

describe('continuous backup under faults', () => {
  let bucket: TestBucket;
  let dir: string;
  let store: ObjectStore;
  const env = (): NodeJS.ProcessEnv => ({ AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'), AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY') });
  const s3 = (): string =>
    `{name: dr, type: s3, bucket: ${bucket.name}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true, credentials: {accessKeyId: ${requireEnv('KVDR_S3_ACCESS_KEY')}, secretAccessKey: ${requireEnv('KVDR_S3_SECRET_KEY')}}}`;

  beforeAll(async () => {
    bucket = await createTestBucket('continuous-faults');
    store = openStore(bucket.repository({ name: 'dr' }));
    dir = await mkdtemp(join(tmpdir(), 'kvdr-continuous-faults-'));
  });
  afterAll(async () => {
    await store.close();
    await bucket.remove();
    await rm(dir, { recursive: true, force: true });
  });

  /** A config with one etcd-continuous job on `endpoint` under `prefix`, segments every `seconds`. */
  const config = (job: string, endpoint: string, prefix: string, seconds = 1): KvdrConfig =>
    testConfig({
      sources: [{ name: 'e', type: 'etcd', endpoints: [endpoint], prefix }],
      repositories: [bucket.repository({ name: 'dr' }), { name: 'audit', type: 'fs', path: join(dir, `audit-${job}`) }],
      jobs: [{ name: job, source: 'e', kind: 'etcd-continuous', schedule: '0 0 1 1 *', repository: 'dr', continuous: { segmentSeconds: seconds, spoolDir: join(dir, `spool-${job}`) } }],
      audit: { repository: 'audit' },
    });
  const events: { type: string; subject: Record<string, unknown> }[] = [];
  const job = (cfg: KvdrConfig): ContinuousJob =>
    new ContinuousJob({ config: cfg, job: cfg.jobs[0] as KvdrConfig['jobs'][number], logger: quietLogger, record: async (type, subject) => void events.push({ type, subject }), retryMs: 200 });

  it('the leader is killed (-9): the other replica takes over, and the chain has neither gap nor overlap', async () => {
    const etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    const prefix = `${uniqueName('ha')}/`;
    const election = uniqueName('election');
    await etcd.put(`${prefix}seed`).value('seed');
    const ports = await freePorts(2);
    const replicas = await Promise.all(
      ports.map((port) =>
        startServe(
          join(dir, `replica-${port}.yaml`),
          `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], prefix: "${prefix}"}]\n` +
            `repositories: [${s3()}, {name: audit, type: fs, path: ${join(dir, 'audit-ha')}}]\n` +
            `jobs: [{name: ha, source: e, kind: etcd-continuous, schedule: "0 0 1 1 *", repository: dr, continuous: {segmentSeconds: 1, spoolDir: ${join(dir, `spool-ha-${port}`)}}}]\n` +
            `audit: {repository: audit}\n` +
            `service: {listen: "127.0.0.1:${port}", leaderElection: {backend: etcd, source: e, key: ${election}, ttlSeconds: 5}}\n`,
          env(),
        ),
      ),
    );
    try {
      const roles = await oneLeader(ports);
      await waitFor(async () => (await chainEvents(store, 'ha').catch(() => undefined)) !== undefined, 'a base');
      const leader = replicas[roles.indexOf('leader')] as (typeof replicas)[number];
      const follower = ports[roles.indexOf('follower')] as number;
      const writing = randomEtcdWrites(etcd, prefix, 25_000, 40);
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      leader.child.kill('SIGKILL');
      await waitFor(async () => (await replicaRole(follower)) === 'leader', 'the follower to take over', 20_000);
      const written = await writing;
      const last = (written.at(-1) as WrittenChange).revision;
      await waitFor(async () => (await chainEvents(store, 'ha')).last >= last, 'the new leader to reach the last write', 30_000);
      expectExactly(await chainEvents(store, 'ha'), written);
      // The base is audited like any backup.
      const trail: AuditEvent[] = await trailEvents(join(dir, 'audit-ha'));
      expect(trail.filter((e) => e.type === 'backup' && e.subject['role'] === 'base' && e.subject['job'] === 'ha').length).toBeGreaterThanOrEqual(1);
    } finally {
      for (const replica of replicas) await stopServer(replica.child, join(dir, 'nothing'));
      etcd.close();
    }
  }, 120_000);

  describe('on a private etcd', () => {
    let instance: EtcdInstance;
    let etcd: Etcd3;
    beforeAll(async () => {
      instance = await startEtcd();
      etcd = connectEtcd({ endpoints: [instance.endpoint] }, {});
    });
    afterAll(async () => {
      etcd.close();
      await instance.stop();
    });

    it('etcd killed and restarted: the watch resumes from the exact revision, nothing lost', async () => {
      const prefix = `${uniqueName('restart')}/`;
      await etcd.put(`${prefix}seed`).value('seed');
      const cfg = config('restart', instance.endpoint, prefix);
      const runner = job(cfg);
      runner.start();
      try {
        await waitFor(async () => (await chainEvents(store, 'restart').catch(() => undefined)) !== undefined, 'a base');
        const before = await randomEtcdWrites(etcd, prefix, 3_000, 40);
        instance.kill();
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        await instance.restart();
        const after = await randomEtcdWrites(etcd, prefix, 3_000, 40);
        const written = [...before, ...after];
        const last = (written.at(-1) as WrittenChange).revision;
        await waitFor(async () => (await chainEvents(store, 'restart')).last >= last, 'the chain to reach the last write', 30_000);
        expectExactly(await chainEvents(store, 'restart'), written);
      } finally {
        await runner.stop();
      }
    }, 90_000);

    it('the revision to resume from was compacted: a gap is recorded with its range, a new base taken, and a restore into the gap refused', async () => {
      const prefix = `${uniqueName('compact')}/`;
      await etcd.put(`${prefix}seed`).value('seed');
      const cfg = config('compact', instance.endpoint, prefix);
      const configPath = join(dir, 'compact.yaml');
      const first = job(cfg);
      first.start();
      try {
        await waitFor(async () => (await chainEvents(store, 'compact').catch(() => undefined)) !== undefined, 'a base');
        const written = await randomEtcdWrites(etcd, prefix, 2_000, 40);
        await waitFor(async () => (await chainEvents(store, 'compact')).last >= (written.at(-1) as WrittenChange).revision, 'the first chain to reach the writes');
      } finally {
        await first.stop();
      }
      const chained = await chainEvents(store, 'compact');
      // While nobody follows: more changes, then a compaction past them all.
      const missed = await randomEtcdWrites(etcd, prefix, 1_000, 40);
      const compactAt = (missed.at(-1) as WrittenChange).revision;
      await etcd.kv.compact({ revision: String(compactAt), physical: true });
      events.length = 0;
      const second = job(cfg);
      second.start();
      try {
        await waitFor(async () => events.some((e) => e.type === 'continuity-gap'), 'a continuity-gap event', 30_000);
        const gap = events.find((e) => e.type === 'continuity-gap')?.subject ?? {};
        expect(gap).toMatchObject({ job: 'compact', fromRevision: chained.last + 1, previousBase: chained.base });
        expect(gap['toRevision']).toBeGreaterThanOrEqual(compactAt);
        expect(String(gap['cause'])).toMatch(/compacted/);
        await waitFor(async () => (await chainEvents(store, 'compact')).base !== chained.base, 'a new base');
      } finally {
        await second.stop();
      }
      // A revision inside the gap is refused in one line, naming the newest point the old chain holds.
      const { writeFile } = await import('node:fs/promises');
      await writeFile(
        configPath,
        `sources: [{name: e, type: etcd, endpoints: ["${instance.endpoint}"], prefix: "${prefix}"}]\nrepositories: [${s3()}]\n` +
          `jobs: [{name: compact, source: e, kind: etcd-continuous, schedule: "0 0 1 1 *", repository: dr}]\n`,
      );
      const inGap = (missed[0] as WrittenChange).revision;
      const refused = await kvdr(['--config', configPath, 'restore-from-s3', '--at', `rev:${inGap}`, '--job', 'compact', '--target', `etcd:${instance.endpoint}`, '--to-prefix', `${uniqueName('gap')}/`], env());
      expect(refused.code).toBe(ExitCode.Usage);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
      expect(refused.stderr).toContain(`revision ${inGap} is past what job compact holds`);
      expect(refused.stderr).toContain(`--at rev:${chained.last}`);
    }, 120_000);
  });

  it('MinIO stopped for 30 s: segments wait in the spool and catch up; nothing is lost', async () => {
    const etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    const prefix = `${uniqueName('outage')}/`;
    await etcd.put(`${prefix}seed`).value('seed');
    const runner = job(config('outage', requireEnv('KVDR_ETCD_ENDPOINT'), prefix));
    runner.start();
    try {
      await waitFor(async () => (await chainEvents(store, 'outage').catch(() => undefined)) !== undefined, 'a base');
      await serviceControl('stop', 'minio');
      let written: WrittenChange[];
      try {
        written = await randomEtcdWrites(etcd, prefix, 30_000, 20);
        expect(runner.state().spoolBytes).toBeGreaterThan(0);
        expect(runner.state().lagSeconds).toBeGreaterThan(20);
      } finally {
        await serviceControl('start', 'minio');
      }
      const last = (written.at(-1) as WrittenChange).revision;
      await waitFor(async () => (await chainEvents(store, 'outage').catch(() => ({ last: 0 }))).last >= last, 'the spool to catch up', 60_000);
      expectExactly(await chainEvents(store, 'outage'), written);
      expect(events.filter((e) => e.type === 'continuity-gap' && e.subject['job'] === 'outage')).toEqual([]);
    } finally {
      await runner.stop();
      etcd.close();
    }
  }, 150_000);

  it('the repository stays away longer than the spool holds: continuity is given up honestly — a gap, then a new base once it is back', async () => {
    const etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    const prefix = `${uniqueName('overflow')}/`;
    await etcd.put(`${prefix}seed`).value('seed');
    const raw = config('overflow', requireEnv('KVDR_ETCD_ENDPOINT'), prefix, 0.5);
    const cfg = testConfig({ ...raw, jobs: raw.jobs.map((j) => ({ ...j, continuous: { ...j.continuous, spoolMaxBytes: 1024 ** 2 } })) });
    events.length = 0;
    const runner = job(cfg);
    runner.start();
    try {
      await waitFor(async () => (await chainEvents(store, 'overflow').catch(() => undefined)) !== undefined, 'a base');
      const before = await chainEvents(store, 'overflow');
      await serviceControl('stop', 'minio');
      try {
        // 3 MiB of incompressible values: more than the 1 MiB spool.
        const { randomBytes } = await import('node:crypto');
        for (let i = 0; i < 30; i++) await etcd.put(`${prefix}big/${i}`).value(randomBytes(100 * 1024));
        await waitFor(async () => runner.state().lastError?.includes('spool') ?? false, 'the spool to overflow', 20_000);
      } finally {
        await serviceControl('start', 'minio');
      }
      await waitFor(async () => events.some((e) => e.type === 'continuity-gap'), 'a continuity-gap event once the repository is back', 60_000);
      const gap = events.find((e) => e.type === 'continuity-gap')?.subject ?? {};
      expect(gap).toMatchObject({ job: 'overflow', previousBase: before.base });
      expect(String(gap['cause'])).toMatch(/unreachable for longer than the spool holds/);
      // The new chain starts from a base that holds everything written while nothing was followed.
      await waitFor(async () => (await chainEvents(store, 'overflow')).base !== before.base, 'a new base');
      const newBase = (await readCatalog(store, { job: 'overflow' })).find((m) => m.id === gap['newBase']);
      expect(newBase?.records).toBe(31);
    } finally {
      await runner.stop();
      etcd.close();
    }
  }, 150_000);

  it('SIGTERM in the middle of a segment: kvdr serve cuts and uploads what is pending before it exits', async () => {
    const etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    const prefix = `${uniqueName('sigterm')}/`;
    await etcd.put(`${prefix}seed`).value('seed');
    const [port] = await freePorts(1);
    const serve = await startServe(
      join(dir, 'sigterm.yaml'),
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], prefix: "${prefix}"}]\n` +
        `repositories: [${s3()}, {name: audit, type: fs, path: ${join(dir, 'audit-sigterm')}}]\n` +
        // Segments every 10 minutes: whatever is written now is pending when the signal comes.
        `jobs: [{name: sigterm, source: e, kind: etcd-continuous, schedule: "0 0 1 1 *", repository: dr, continuous: {segmentSeconds: 600, spoolDir: ${join(dir, 'spool-sigterm')}}}]\n` +
        `audit: {repository: audit}\nservice: {listen: "127.0.0.1:${port as number}"}\n`,
      env(),
    );
    try {
      await waitFor(async () => (await chainEvents(store, 'sigterm').catch(() => undefined)) !== undefined, 'a base');
      const written = await randomEtcdWrites(etcd, prefix, 2_000, 40);
      // A value as large as etcd takes by default (1.5 MiB request limit): kept exactly like any other.
      const big = Buffer.alloc(1400 * 1024, 0xa5);
      const bigRevision = Number((await etcd.put(`${prefix}big`).value(big).exec()).header.revision);
      written.push({ op: 'put', key: Buffer.from(`${prefix}big`), revision: bigRevision, at: Date.now() });
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect((await chainEvents(store, 'sigterm')).events).toEqual([]);
      serve.child.kill('SIGTERM');
      expect(await serve.exited, serve.output().slice(-2000)).toBe(0);
      const chain = await chainEvents(store, 'sigterm');
      expectExactly(chain, written);
      const stored = chain.events.at(-1);
      expect(stored?.op === 'put' && stored.value.equals(big)).toBe(true);
    } finally {
      await stopServer(serve.child, join(dir, 'nothing'));
      etcd.close();
    }
  }, 90_000);
});

import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCatalog } from '../../src/repository/catalog.js';
import { FsStore } from '../../src/repository/fs-store.js';
import { S3Store } from '../../src/repository/s3-store.js';
import { createTestBucket, minioClient } from '../harness/minio.js';
import { PROJECT_ROOT, serviceControl } from '../harness/stack.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { fillEtcd } from '../harness/etcd-fill.js';
import { startEtcd } from '../harness/etcd-instance.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { freePorts } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';

/** `kvdr serve` on a config, its stderr collected. */
function startServe(config: string, env: NodeJS.ProcessEnv = process.env): { child: ChildProcess; logs: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [`${PROJECT_ROOT}dist/cli/kvdr.js`, '--config', config, 'serve'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let logs = '';
  child.stderr?.on('data', (d: Buffer) => (logs += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, logs: () => logs, exited };
}

describe('kvdr serve', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-serve-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('catches up, backs up real etcd on its schedule, serves status and metrics, and stops cleanly on SIGTERM', async () => {
    const repo = join(dir, 'repo');
    const config = join(dir, 'kvdr.yaml');
    const [port] = (await freePorts(1)) as [number];
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], prefix: ${uniqueName('serve')}/},\n` +
        `          {name: down, type: etcd, endpoints: ["http://127.0.0.1:1"]}]\n` +
        `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
        `jobs: [{name: every2s, source: e, kind: etcd-export, schedule: "*/2 * * * * *", repository: local, retention: {keepLast: 100, minDays: 0}},\n` +
        `       {name: broken, source: down, kind: etcd-export, schedule: "0 0 * * *", repository: local, retries: 0}]\n` +
        `service: {listen: "127.0.0.1:${port}"}\n`,
    );
    const { child, logs, exited } = startServe(config);
    const store = new FsStore({ path: repo });
    try {
      const deadline = Date.now() + 20_000;
      while ((await readCatalog(store)).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      const catalog = await readCatalog(store);
      expect(catalog.length, logs()).toBeGreaterThanOrEqual(3);
      expect(logs()).toContain('missed a slot: running it now');

      const get = async (path: string): Promise<{ status: number; text: string }> => {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        return { status: res.status, text: await res.text() };
      };
      expect(await get('/healthz')).toEqual({ status: 200, text: 'ok\n' });
      const ready = await get('/readyz');
      expect(ready.status).toBe(200);
      expect(JSON.parse(ready.text)).toMatchObject({ ready: true, role: 'single', jobs: [{ job: 'every2s' }, { job: 'broken', lastSuccess: null }] });
      const metrics = (await get('/metrics')).text;
      expect(metrics).toMatch(/^kvdr_backup_last_success_timestamp_seconds\{job="every2s"\} \d+/m);
      expect(metrics).toMatch(/^kvdr_backup_duration_seconds_count\{job="every2s",outcome="success"\} [1-9]/m);
      expect(metrics).toMatch(/^kvdr_backup_bytes\{job="every2s"\} [1-9]/m);
      expect(metrics).toMatch(/^kvdr_backup_failures_total\{job="broken"\} 1$/m);
      expect((JSON.parse((await get('/api/jobs')).text) as { job: string; lastRun?: { ok: boolean; error: string } }[]).find((j) => j.job === 'broken')?.lastRun).toMatchObject({
        ok: false,
        error: expect.stringContaining('cannot reach etcd') as unknown,
      });
      expect((JSON.parse((await get('/api/backups')).text) as unknown[]).length).toBeGreaterThanOrEqual(3);
      const page = await get('/');
      expect(page.text).toContain('<td>every2s</td>');
      expect(page.text).toContain(catalog[0]?.id ?? 'no backup');
      expect((await get('/nope')).status).toBe(404);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(logs()).toContain('scheduler stopped');
    // Every listed backup is whole: its artifact is there with the size its manifest records.
    for (const manifest of await readCatalog(store)) expect((await store.head(manifest.repository.key))?.size).toBe(manifest.bytes.stored);
  });

  it('collects a PX dump as soon as it settles, without waiting for the job schedule', async () => {
    const repo = join(dir, 'watched');
    const dumps = join(dir, 'dumps');
    await mkdir(dumps, { recursive: true });
    const config = join(dir, 'watched.yaml');
    const [port] = (await freePorts(1)) as [number];
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], clusterId: watched}]\n` +
        `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
        `jobs: [{name: dumps, source: e, kind: px-dumps, schedule: "0 0 1 1 *", repository: local}]\n` +
        `pxDumps: {dirs: [${dumps}], node: n1, stableSeconds: 1}\n` +
        `service: {listen: "127.0.0.1:${port}"}\n`,
    );
    const { child, logs, exited } = startServe(config);
    const store = new FsStore({ path: repo });
    try {
      // The catch-up run at start finds nothing (a dump arriving during it is collected once it ends);
      // the next slot is months away.
      await waitFor(() => Promise.resolve(logs().includes('scheduler started')), 'the service to start', 20_000);
      await copyFile(`${PROJECT_ROOT}test/fixtures/pxdump/pwx_kvdb_2018-05-25T22:59:08Z.dump`, join(dumps, 'pwx_kvdb_2018-05-25T22:59:08Z.dump'));
      await waitFor(async () => (await readCatalog(store)).length === 1, 'the dump to be collected', 20_000);
      const [manifest] = await readCatalog(store);
      expect(manifest?.details).toMatchObject({ trigger: 'watch', file: 'pwx_kvdb_2018-05-25T22:59:08Z.dump', node: 'n1' });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('stops cleanly on a SIGTERM that arrives while it is still starting', async () => {
    // An S3 endpoint that accepts connections and never answers: reading the last successes at start hangs.
    const blackhole = createServer(() => undefined);
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    const config = join(dir, 'stuck.yaml');
    const [port] = (await freePorts(1)) as [number];
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"]}]\n` +
        `repositories: [{name: s3, type: s3, bucket: stuck, region: us-east-1, endpoint: "http://127.0.0.1:${(blackhole.address() as AddressInfo).port}", forcePathStyle: true}]\n` +
        `jobs: [{name: nightly, source: e, kind: etcd-export, schedule: "0 0 * * *", repository: s3}]\n` +
        `service: {listen: "127.0.0.1:${port}"}\n`,
    );
    const env = { ...process.env, AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 's' };
    const { child, logs, exited } = startServe(config, env);
    try {
      await waitFor(() => Promise.resolve(logs().includes('HTTP status on')), 'the service to listen', 20_000);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(logs()).toContain('SIGTERM: stopping the scheduler');
      expect(logs()).not.toContain('scheduler started');
    } finally {
      child.kill('SIGKILL');
      blackhole.close();
    }
  });

  it.each(['fs', 's3'] as const)('aborts a backup still running when the grace after SIGTERM runs out, and lists no half backup (%s repository)', async (type) => {
    const etcd = await startEtcd();
    const client = connectEtcd({ endpoints: [etcd.endpoint] }, {});
    await fillEtcd(client, 'big/', 150, 1024 * 1024);
    client.close();
    const bucket = type === 's3' ? await createTestBucket('serve-aborted') : undefined;
    const repo = join(dir, `aborted-${type}`);
    const repository = bucket
      ? `{name: dr, type: s3, bucket: ${bucket.name}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true}`
      : `{name: dr, type: fs, path: ${repo}}`;
    const config = join(dir, `aborted-${type}.yaml`);
    const [port] = (await freePorts(1)) as [number];
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${etcd.endpoint}"]}]\n` +
        `repositories: [${repository}]\n` +
        `jobs: [{name: snap, source: e, kind: etcd-snapshot, compression: gzip, schedule: "0 0 * * *", repository: dr, retries: 0}]\n` +
        `service: {listen: "127.0.0.1:${port}", shutdownGraceSeconds: 0}\n`,
    );
    const env = { ...process.env, AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'), AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY') };
    const { child, logs, exited } = startServe(config, env);
    try {
      // The catch-up run starts at once; stop the service while it is still streaming 150 MiB through gzip.
      const deadline = Date.now() + 20_000;
      while (!(await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '')).includes('kvdr_job_running{job="snap"} 1') && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(logs()).toContain('aborting them');
      if (bucket) {
        const store = new S3Store(bucket.repository());
        expect(await readCatalog(store)).toEqual([]);
        await store.close();
        const s3 = minioClient();
        // No multipart upload is left open: it would hold storage (and cost) until a lifecycle rule ended it.
        expect((await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket.name }))).Uploads ?? []).toEqual([]);
        s3.destroy();
      } else {
        expect(await readCatalog(new FsStore({ path: repo }))).toEqual([]);
        const leftovers = await readdir(repo, { recursive: true }).catch(() => []);
        expect(leftovers.filter((f) => String(f).includes('.kvdr-tmp-'))).toEqual([]);
      }
    } finally {
      child.kill('SIGKILL');
      await etcd.stop();
      await bucket?.remove();
    }
  });

  it('counts failures while MinIO is down and resumes backups when it returns', async () => {
    const bucket = await createTestBucket('serve-outage');
    const config = join(dir, 'outage.yaml');
    const [port] = (await freePorts(1)) as [number];
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], prefix: ${uniqueName('outage')}/, clusterId: c1},\n` +
        `          {name: c, type: consul, endpoints: ["${requireEnv('KVDR_CONSUL_ADDR')}"]}]\n` +
        `repositories: [{name: dr, type: s3, bucket: ${bucket.name}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true}]\n` +
        `jobs: [{name: every2s, source: e, kind: etcd-export, schedule: "*/2 * * * * *", repository: dr, retries: 0, retention: {keepLast: 1000, minDays: 0}},\n` +
        `       {name: consul, source: c, kind: consul-snapshot, schedule: "0 0 * * *", repository: dr},\n` +
        `       {name: dumps, source: e, kind: px-dumps, schedule: "0 0 * * *", repository: dr}]\n` +
        `pxDumps: {dirs: ["${PROJECT_ROOT}test/fixtures/pxdump"], node: serve-test, stableSeconds: 0}\n` +
        `service: {listen: "127.0.0.1:${port}"}\n`,
    );
    const env = { ...process.env, AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'), AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY') };
    const { child, exited } = startServe(config, env);
    const metric = async (pattern: RegExp): Promise<number> => {
      const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
      return Number(pattern.exec(text)?.[1] ?? 0);
    };
    const successes = /^kvdr_backup_duration_seconds_count\{job="every2s",outcome="success"\} (\d+)/m;
    const failures = /^kvdr_backup_failures_total\{job="every2s"\} (\d+)/m;
    try {
      await waitFor(async () => (await metric(successes)) >= 1, 'a first backup');
      await serviceControl('stop', 'minio');
      await waitFor(async () => (await metric(failures)) >= 2, 'failures while MinIO is down');
      const before = await metric(successes);
      await serviceControl('start', 'minio');
      await waitFor(async () => (await metric(successes)) >= before + 2, 'backups after MinIO returned');
    } finally {
      await serviceControl('start', 'minio');
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    const store = new S3Store(bucket.repository());
    try {
      // Catch-up at start backed up every kind into MinIO: etcd, Consul and both PX dumps.
      const kinds = (await readCatalog(store)).map((m) => m.kind);
      expect(new Set(kinds)).toEqual(new Set(['etcd-export', 'consul-snapshot', 'px-dumps']));
      expect(kinds.filter((k) => k === 'px-dumps')).toHaveLength(2);
      for (const manifest of await readCatalog(store)) expect((await store.head(manifest.repository.key))?.size).toBe(manifest.bytes.stored);
    } finally {
      await store.close();
      await bucket.remove();
    }
  });
});

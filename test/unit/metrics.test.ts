import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { RepositoryConfig } from '../../src/config/schema.js';
import { ServiceMetrics } from '../../src/server/metrics.js';
import { testConfig } from '../harness/config.js';

const config = testConfig({
  sources: [{ name: 'e', type: 'etcd', endpoints: ['http://127.0.0.1:2379'] }],
  repositories: [{ name: 'local', type: 'fs', path: '/nonexistent' }],
  jobs: [
    { name: 'hourly', source: 'e', kind: 'etcd-export', schedule: '0 * * * *', repository: 'local' },
    { name: 'fast', source: 'e', kind: 'etcd-snapshot', schedule: '* * * * * *', repository: 'local', rpoMinutes: 0.05 },
    { name: 'dumps', source: 'e', kind: 'px-dumps', schedule: '*/5 * * * *', repository: 'local' },
    { name: 'drill', source: 'e', kind: 'restore-test', schedule: '0 4 * * 0', drill: { job: 'hourly', toPrefix: 'drill/' } },
    { name: 'check', kind: 'verify', schedule: '15 5 * * *' },
  ],
  audit: { rpoMinutes: 90 },
});

/** The value of one series in the exposition text, or undefined when the registry does not have it. */
async function value(metrics: ServiceMetrics, series: string): Promise<number | undefined> {
  const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('service metrics for alerts', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0)) await step();
  });

  it('export each job kind, the RPO of the jobs the audit holds to one, and failure counters from 0', async () => {
    const metrics = new ServiceMetrics();
    metrics.describeService(config, () => 'single');
    expect(await value(metrics, 'kvdr_job_info{job="hourly",kind="etcd-export",source="e",repository="local"}')).toBe(1);
    expect(await value(metrics, 'kvdr_job_info{job="check",kind="verify",source="",repository=""}')).toBe(1);
    expect(await value(metrics, 'kvdr_job_info{job="drill",kind="restore-test",source="e",repository=""}')).toBe(1);
    expect(await value(metrics, 'kvdr_job_rpo_seconds{job="hourly"}')).toBe(90 * 60);
    expect(await value(metrics, 'kvdr_job_rpo_seconds{job="fast"}')).toBe(3);
    // PX dumps come when a node loses its KVDB, drills and verify runs store no recovery point.
    for (const job of ['dumps', 'drill', 'check']) expect(await value(metrics, `kvdr_job_rpo_seconds{job="${job}"}`)).toBeUndefined();
    for (const job of ['hourly', 'drill', 'check']) {
      expect(await value(metrics, `kvdr_backup_failures_total{job="${job}"}`)).toBe(0);
      expect(await value(metrics, `kvdr_job_consecutive_failures{job="${job}"}`)).toBe(0);
    }
    expect(await value(metrics, 'kvdr_prune_failures_total{job="dumps"}')).toBe(0);
    expect(await value(metrics, 'kvdr_prune_failures_total{job="check"}')).toBeUndefined();
    // The never-succeeded alert measures the service's uptime with it.
    expect(await value(metrics, 'kvdr_process_start_time_seconds')).toBeGreaterThan(0);
  });

  it('say whether this replica leads, at each scrape', async () => {
    const metrics = new ServiceMetrics();
    let role: 'single' | 'leader' | 'follower' = 'single';
    metrics.describeService(config, () => role);
    expect(await value(metrics, 'kvdr_leader')).toBe(1);
    role = 'follower';
    expect(await value(metrics, 'kvdr_leader')).toBe(0);
    role = 'leader';
    expect(await value(metrics, 'kvdr_leader')).toBe(1);
  });

  it('count failures in a row, and start again from 0 after a success', async () => {
    const metrics = new ServiceMetrics();
    metrics.describeService(config, () => 'single');
    metrics.recordRun('drill', false, 1);
    metrics.recordRun('drill', false, 1);
    expect(await value(metrics, 'kvdr_job_consecutive_failures{job="drill"}')).toBe(2);
    expect(await value(metrics, 'kvdr_backup_failures_total{job="drill"}')).toBe(2);
    metrics.recordRun('drill', true, 1);
    expect(await value(metrics, 'kvdr_job_consecutive_failures{job="drill"}')).toBe(0);
    expect(await value(metrics, 'kvdr_backup_failures_total{job="drill"}')).toBe(2);
  });

  it('probe repositories: up when a listing answers, down when refused or silent past the timeout', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvdr-metrics-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    // A port that accepts connections and never answers, and one where nothing listens.
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    cleanup.push(() => void silent.close());
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const s3 = (name: string, port: number): RepositoryConfig => ({
      name,
      type: 's3',
      bucket: 'kvdr-probe',
      region: 'us-east-1',
      endpoint: `http://127.0.0.1:${port}`,
      forcePathStyle: true,
      prefix: '',
      partSizeMiB: 5,
      queueSize: 1,
      credentials: { accessKeyId: 'k', secretAccessKey: 's' },
    });
    const metrics = new ServiceMetrics();
    cleanup.push(() => metrics.close());
    const started = Date.now();
    await metrics.probeRepositories(
      [{ name: 'disk', type: 'fs', path: dir }, s3('refused', closedPort), s3('silent', (silent.address() as AddressInfo).port)],
      { intervalMs: 60_000, timeoutMs: 1_500 },
    );
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(await value(metrics, 'kvdr_repository_up{repository="disk"}')).toBe(1);
    expect(await value(metrics, 'kvdr_repository_up{repository="refused"}')).toBe(0);
    expect(await value(metrics, 'kvdr_repository_up{repository="silent"}')).toBe(0);
  });
});

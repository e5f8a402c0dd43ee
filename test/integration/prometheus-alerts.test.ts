import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv } from '../harness/namespace.js';
import { freePorts } from '../harness/ports.js';
import { RULES_FILE, prometheusBinaries, startPrometheus, type PrometheusInstance } from '../harness/prometheus.js';
import { PROJECT_ROOT } from '../harness/stack.js';
import { waitFor } from '../harness/wait.js';

type AlertState = 'inactive' | 'pending' | 'firing';

/**
 * The whole path of an alert: a real `kvdr serve` backing up its own etcd every 2 s, a real Prometheus
 * scraping it every second with the shipped rule file, and the "backup too old" alert going from
 * inactive through pending to firing when that etcd is killed, and back when it returns.
 */
describe('kvdr alerts in a real Prometheus', () => {
  let dir: string;
  let etcd: EtcdInstance | undefined;
  let bucket: TestBucket | undefined;
  let serve: ChildProcess | undefined;
  let serveLogs = '';
  let prometheus: PrometheusInstance | undefined;

  beforeAll(async () => {
    await prometheusBinaries(); // built once (minutes the first time); not part of the test's own time
    dir = await mkdtemp(join(tmpdir(), 'kvdr-alerts-'));
  }, 900_000);

  afterAll(async () => {
    serve?.kill('SIGKILL');
    await prometheus?.stop();
    await etcd?.stop();
    await bucket?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('fires "backup too old" when the source stops and resolves when it returns', { timeout: 120_000 }, async () => {
    etcd = await startEtcd();
    await etcd.ctl('put', 'alerts/k', 'v');
    bucket = await createTestBucket('prom-alerts');
    const [port] = (await freePorts(1)) as [number];
    const config = join(dir, 'kvdr.yaml');
    // rpoMinutes 0.1 = 6 s: three times the schedule's period, so a healthy job is never late.
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${etcd.endpoint}"], prefix: alerts/}]\n` +
        `repositories: [{name: dr, type: s3, bucket: ${bucket.name}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true}]\n` +
        `jobs: [{name: every2s, source: e, kind: etcd-export, schedule: "*/2 * * * * *", repository: dr, retries: 0, rpoMinutes: 0.1}]\n` +
        `service: {listen: "127.0.0.1:${port}", shutdownGraceSeconds: 0}\n`,
    );
    const env = { ...process.env, AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'), AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY') };
    serve = spawn(process.execPath, [`${PROJECT_ROOT}dist/cli/kvdr.js`, '--config', config, 'serve'], { stdio: ['ignore', 'ignore', 'pipe'], env });
    serve.stderr?.on('data', (d: Buffer) => (serveLogs = (serveLogs + d.toString()).slice(-20_000)));
    prometheus = await startPrometheus({ targets: [`127.0.0.1:${port}`], ruleFiles: [RULES_FILE] });
    const prom = prometheus;

    const query = async (promql: string): Promise<number | undefined> => {
      const data = await prom.api<{ result: { value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(promql)}`);
      return data.result[0] === undefined ? undefined : Number(data.result[0].value[1]);
    };
    /** The state of one alert for kvdr job every2s, as Prometheus' rule API reports it. */
    const state = async (alert: string): Promise<AlertState> => {
      const rule = (await prom.rules()).find((r) => r.name === alert);
      if (!rule) throw new Error(`Prometheus has not loaded ${alert}`);
      if (rule.health !== 'ok' && rule.health !== 'unknown') throw new Error(`${alert}: ${rule.health} ${rule.lastError ?? ''}`);
      return rule.alerts?.find((a) => a.labels['job'] === 'every2s')?.state ?? 'inactive';
    };
    const context = (): string => `kvdr:\n${serveLogs.slice(-3000)}\nprometheus:\n${prom.logs()}`;
    const seen: AlertState[] = [];
    const until = async (alert: string, wanted: AlertState, ms: number): Promise<void> => {
      await waitFor(
        async () => {
          const now = await state(alert);
          if (alert === 'KvdrBackupTooOld' && seen.at(-1) !== now) seen.push(now);
          return now === wanted;
        },
        `${alert} to be ${wanted} (seen ${seen.join(' → ')})`,
        ms,
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${context()}`);
      });
    };

    // Scraped, with the RPO from the service and fresh backups: the alert is evaluated and inactive.
    await waitFor(async () => (await query('job:kvdr_job_rpo_seconds:max{job="every2s"}')) === 6, 'the RPO of every2s in Prometheus', 30_000).catch((err: unknown) => {
      throw new Error(`${String(err)}\n${context()}`);
    });
    await waitFor(async () => (await query('job:kvdr_recovery_point_timestamp_seconds:max{job="every2s"}')) !== undefined, 'a first backup', 30_000);
    expect(await query('kvdr_leader')).toBe(1);
    expect(await query('kvdr_repository_up{repository="dr"}')).toBe(1);
    for (let i = 0; i < 4; i++) {
      expect(await state('KvdrBackupTooOld'), context()).toBe('inactive');
      await new Promise((r) => setTimeout(r, 1_000));
    }
    seen.push('inactive');

    // The source goes away: no new backup; once the newest is 6 s old the alert is pending, 30 s later firing.
    const stoppedAt = Date.now();
    etcd.kill();
    await until('KvdrBackupTooOld', 'firing', 60_000);
    const firedAfter = (Date.now() - stoppedAt) / 1000;
    expect(seen).toEqual(['inactive', 'pending', 'firing']);
    // Every run fails meanwhile: two in a row is "failing repeatedly".
    expect(await state('KvdrJobFailing')).toBe('firing');
    expect(firedAfter).toBeGreaterThanOrEqual(30);

    // The source returns: the next run succeeds and the alert resolves.
    const restartedAt = Date.now();
    await etcd.restart();
    await until('KvdrBackupTooOld', 'inactive', 30_000);
    expect(await state('KvdrJobFailing')).toBe('inactive');
    console.log(`KvdrBackupTooOld fired ${firedAfter.toFixed(1)} s after etcd stopped and resolved ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after it returned`);
  });
});

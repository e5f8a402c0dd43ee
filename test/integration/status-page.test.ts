import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobStatus } from '../../src/scheduler/scheduler.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { freePorts } from '../harness/ports.js';
import { chromium } from '../harness/chromium.js';
import { PROJECT_ROOT } from '../harness/stack.js';
import { waitFor } from '../harness/wait.js';



/** The text a reader sees: tags dropped, entities decoded, whitespace collapsed. */
const text = (html: string): string =>
  html
    .replace(/<style[\s\S]*?<\/style>/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n)))
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');

interface Served {
  port: number;
  logs: () => string;
  stop: () => Promise<number | null>;
}

/** `kvdr serve` on a config; stop() sends SIGTERM and returns the exit code. */
function serve(config: string, port: number): Served {
  const child = spawn(process.execPath, [`${PROJECT_ROOT}dist/cli/kvdr.js`, '--config', config, 'serve'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, KVDR_CONFIG: '' },
  });
  let logs = '';
  child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    port,
    logs: () => logs,
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

const jobsOf = async (port: number): Promise<JobStatus[]> => (await (await fetch(`http://127.0.0.1:${port}/api/jobs`)).json()) as JobStatus[];

describe('the status page at / in headless Chromium', () => {
  let dir: string;
  let bucket: TestBucket;
  const etcd = (): string => requireEnv('KVDR_ETCD_ENDPOINT');
  const s3 = (name: string, bucketName: string, endpoint = requireEnv('KVDR_S3_ENDPOINT')): string =>
    `{name: ${name}, type: s3, bucket: ${bucketName}, region: ${requireEnv('KVDR_S3_REGION')}, endpoint: "${endpoint}", forcePathStyle: true, ` +
    `credentials: {accessKeyId: ${requireEnv('KVDR_S3_ACCESS_KEY')}, secretAccessKey: ${requireEnv('KVDR_S3_SECRET_KEY')}}}`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-status-page-'));
    bucket = await createTestBucket('status-page');
  });
  afterAll(async () => {
    await bucket.remove();
    // KVDR_KEEP_SCREENSHOTS=1 keeps the temp dir (and its screenshots) to look at.
    if (process.env['KVDR_KEEP_SCREENSHOTS'] === '1') console.log(`status page screenshots kept in ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  });

  /** Serves a config, waits until every job has run once, renders / to a DOM dump and a screenshot. */
  async function render(label: string, repositories: string[], jobs: string[]): Promise<{ dom: string; page: string; jobs: JobStatus[] }> {
    const [port] = (await freePorts(1)) as [number];
    const config = join(dir, `${label}.yaml`);
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${etcd()}"], prefix: ${uniqueName('status-page')}/}]\n` +
        `repositories:\n${repositories.map((r) => `  - ${r}\n`).join('')}` +
        `jobs:\n${jobs.map((j) => `  - ${j}\n`).join('')}` +
        `service: {listen: "127.0.0.1:${port}"}\n`,
    );
    const served = serve(config, port);
    try {
      // Each job's catch-up run at start (no success yet) fills its last run.
      await waitFor(async () => {
        try {
          const status = await jobsOf(port);
          return status.length === jobs.length && status.every((j) => j.lastRun !== undefined && !j.running);
        } catch {
          return false;
        }
      }, `every job of ${label} to run once (logs: ${served.logs().slice(-2000)})`, 45_000);
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(200);
      const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
      const dom = await chromium(dir, `${label}-dom`, ['--dump-dom', `http://127.0.0.1:${port}/`]);
      const shot = join(dir, `${label}.png`);
      await chromium(dir, `${label}-shot`, [`--screenshot=${shot}`, '--window-size=1400,900', `http://127.0.0.1:${port}/`]);
      expect((await stat(shot)).size).toBeGreaterThan(10 * 1024);
      return { dom, page, jobs: await jobsOf(port) };
    } finally {
      expect(await served.stop()).toBe(0);
    }
  }

  it('shows the leader state, the jobs with their runs and slots, and the newest backups when all is well', async () => {
    const { dom, jobs } = await render('healthy', [s3('remote', bucket.name)], [
      '{name: hourly-export, source: e, kind: etcd-export, schedule: "0 * * * *", repository: remote}',
      '{name: nightly-snapshot, source: e, kind: etcd-snapshot, schedule: "0 2 * * *", repository: remote}',
    ]);
    const seen = text(dom);
    expect(dom).not.toContain('class="banner"');
    expect(seen).toContain('scheduler: single replica');
    for (const job of jobs) {
      expect(job.lastRun?.ok, `${job.job}: ${job.lastRun?.error ?? ''}`).toBe(true);
      expect(seen).toContain(`${job.job} ${job.schedule} ok at ${job.lastRun?.finishedAt ?? '?'} ${job.lastSuccess ?? '?'} ${job.nextRun ?? '?'}`);
    }
    // Both backups are listed, in the table Chromium parsed.
    const backups = /<table class="backups">([\s\S]*?)<\/table>/.exec(dom)?.[1] ?? '';
    expect(backups.match(/<tr>/g)?.length).toBe(3);
    expect(text(backups)).toContain('etcd-export');
    expect(text(backups)).toContain('etcd-snapshot');
  });

  it('keeps the jobs and the reachable repository, with the unlistable one as a banner', async () => {
    const missing = uniqueName('no-such-bucket').slice(0, 63);
    const local = join(dir, 'local-repo');
    const { dom, page, jobs } = await render(
      'degraded',
      // A bucket that does not exist, and an endpoint where nothing listens: both cannot be listed.
      [s3('remote', missing), s3('elsewhere', 'kvdr', 'http://127.0.0.1:1'), `{name: local, type: fs, path: ${local}}`],
      [
        '{name: to-remote, source: e, kind: etcd-export, schedule: "0 * * * *", repository: remote, retries: 0}',
        '{name: to-local, source: e, kind: etcd-export, schedule: "30 * * * *", repository: local}',
      ],
    );
    const seen = text(dom);
    expect(seen).toMatch(new RegExp(`repository remote cannot be listed: [^—]*${missing}`));
    expect(seen).toMatch(/repository elsewhere cannot be listed: /);
    expect(dom.match(/class="banner"/g)?.length).toBe(2);
    expect(seen).toContain('scheduler: single replica');
    const remote = jobs.find((j) => j.job === 'to-remote');
    const toLocal = jobs.find((j) => j.job === 'to-local');
    expect(remote?.lastRun?.ok).toBe(false);
    expect(toLocal?.lastRun?.ok, toLocal?.lastRun?.error).toBe(true);
    // The failed run, with its error, and the next slots are in the job table.
    expect(dom).toMatch(/<tr class="bad"><td>to-remote<\/td>/);
    expect(seen).toContain(`to-remote 0 * * * * failed: ${remote?.lastRun?.error ?? '?'} at ${remote?.lastRun?.finishedAt ?? '?'} - ${remote?.nextRun ?? '?'}`);
    expect(seen).toContain(`to-local 30 * * * * ok at ${toLocal?.lastRun?.finishedAt ?? '?'}`);
    expect(seen).toContain(toLocal?.nextRun ?? 'a next slot');
    // The reachable repository's backup still shows.
    const backups = /<table class="backups">([\s\S]*?)<\/table>/.exec(dom)?.[1] ?? '';
    expect(text(backups)).toMatch(/etcd-export .* local/);
    expect(page).toContain('<td>to-local</td>');
  });
});

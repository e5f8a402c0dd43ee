import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../harness/stack.js';
import { waitFor } from '../harness/wait.js';

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A new operator's shell: PATH without the Node 24 the harness runs on (the machine's own node may be too
 * old, so the printed commands must not rely on it), HOME and the cache, and none of the test stack's
 * KVDR_* / AWS_* variables — what the demo prints has to carry everything itself.
 */
function operatorEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const path = (process.env['PATH'] ?? '').split(':').filter((d) => !d.includes('/kvdr/node/'));
  const env: NodeJS.ProcessEnv = { PATH: path.join(':'), HOME: process.env['HOME'] ?? '/root', LANG: 'C.UTF-8' };
  for (const name of ['KVDR_CACHE_DIR', 'XDG_CACHE_HOME', 'TMPDIR']) if (process.env[name]) env[name] = process.env[name];
  return { ...env, ...extra };
}

/** bash -c COMMAND in cwd, output collected, bounded in time. */
function bash(command: string, cwd: string, env: NodeJS.ProcessEnv, ms: number): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The pids of a process's children (Linux /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    return text.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

describe('npm run demo, then what it says to try', () => {
  let dir: string;
  let stack: string;
  let demo: Result;
  let tries: string[] = [];
  let stop = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-demo-'));
    // A stack of its own (own directory, own free ports), torn down if this test process dies.
    stack = join(dir, 'stack');
    const env = operatorEnv({ KVDR_DEMO_DIR: stack, KVDR_DEMO_WATCH_PID: String(process.pid) });
    // First run on a fresh machine builds MinIO and Consul (minutes); the harness has built them already.
    demo = await bash('bash scripts/demo.sh', PROJECT_ROOT, env, 900_000);
    tries = demo.stdout
      .split('\n')
      .filter((l) => l.startsWith('Try:'))
      .map((l) => l.slice('Try:'.length).trim());
    stop = demo.stdout.split('\n').find((l) => l.startsWith('Stop:'))?.slice('Stop:'.length).trim() ?? '';
  }, 960_000);

  afterAll(async () => {
    // The printed Stop line, and the script directly should that fail.
    if (stop) await bash(stop, dir, operatorEnv(), 120_000);
    if (existsSync(stack)) await bash('bash scripts/demo.sh down', PROJECT_ROOT, operatorEnv({ KVDR_DEMO_DIR: stack }), 120_000);
    await rm(dir, { recursive: true, force: true });
  }, 300_000);

  it('runs to the end, installing only what it runs, a progress line before each build', () => {
    expect(demo.code, `${demo.stdout}\n${demo.stderr}`).toBe(0);
    expect(demo.stdout).toContain('== kvdr backups list');
    // Only the demo's parts: no Chromium, docker-compose, etcd 3.5 or the pxkvdb test tool.
    expect(demo.stderr).not.toMatch(/chromium|docker-compose|etcd35|etcd 3\.5|pxkvdb/i);
    for (const line of demo.stderr.split('\n').filter((l) => /^\[install\] \w+: building/.test(l))) {
      const what = /^\[install\] (\w+):/.exec(line)?.[1] ?? '';
      expect(demo.stderr, `a [demo] progress line before: ${line}`).toMatch(new RegExp(`\\[demo\\] building ${what} \\(first time only, about \\d+ minutes\\)`, 'i'));
    }
    expect(tries.length).toBeGreaterThanOrEqual(2);
    expect(tries.filter((t) => /\sserve\b/.test(t))).toHaveLength(1);
    expect(stop).not.toBe('');
  });

  it('prints "Try:" commands that work pasted into a fresh shell in another directory', async () => {
    expect(tries.length, 'the demo printed no "Try:" lines').toBeGreaterThan(0);
    for (const command of tries.filter((t) => !/\sserve\b/.test(t))) {
      const result = await bash(command, dir, operatorEnv(), 120_000);
      expect(result.code, `${command}\n${result.stdout}\n${result.stderr}`).toBe(0);
      expect(result.stderr).not.toContain('no AWS credentials');
    }
  }, 300_000);

  it('prints a "Try: ... serve" that starts, is ready, reaches S3, and stops on SIGTERM with exit 0', async () => {
    const command = tries.find((t) => /\sserve\b/.test(t)) ?? 'false';
    const port = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(command)?.[1];
    expect(port, `a status URL in: ${command}`).toBeDefined();
    const child = spawn('bash', ['-c', command], { cwd: dir, env: operatorEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    child.stdout.on('data', (d: Buffer) => (logs += d.toString()));
    child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const get = async (path: string): Promise<{ status: number; body: string }> => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, body: await res.text() };
    };
    try {
      await waitFor(async () => (await get('/readyz').catch(() => ({ status: 0 }))).status === 200, `serve to be ready (logs: ${logs})`, 60_000);
      // The catalog in the demo's bucket lists: the credentials reached MinIO.
      const backups = await get('/api/backups');
      expect(backups.status, backups.body).toBe(200);
      expect((JSON.parse(backups.body) as { repository: { name: string } }[]).some((m) => m.repository.name === 'demo-s3')).toBe(true);
      const jobs = JSON.parse((await get('/api/jobs')).body) as { job: string; lastRun?: { ok: boolean; error?: string } }[];
      expect(jobs.map((j) => j.job)).toContain('etcd-snapshot');
      for (const job of jobs) expect(job.lastRun?.error ?? '', job.job).not.toMatch(/credential/i);
      expect((await get('/')).body).not.toContain('class="banner"');
      expect(logs).not.toMatch(/no AWS credentials|credential/i);
    } finally {
      // What a terminal's Ctrl-C / `kill` reaches: kvdr itself, which bash runs as its child.
      const [node] = await childrenOf(child.pid ?? 0);
      if (node) process.kill(node, 'SIGTERM');
      else child.kill('SIGTERM');
    }
    expect(await exited, logs).toBe(0);
  }, 120_000);
});

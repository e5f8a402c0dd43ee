import { execFile, spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stopServer } from './child-process.js';
import { freePorts } from './ports.js';
import { PROJECT_ROOT } from './stack.js';

/**
 * Prometheus and promtool, built from github.com/prometheus/prometheus at the version pinned in
 * scripts/versions.sh and cached by `install-services.sh prometheus` (which builds them the first time
 * and prints their paths).
 */

const run = promisify(execFile);

/** The plain rule file (a link to the one the Helm chart renders) and its promtool tests. */
export const RULES_FILE = `${PROJECT_ROOT}deploy/prometheus/kvdr.rules.yaml`;
export const RULES_TEST_FILE = `${PROJECT_ROOT}deploy/prometheus/kvdr.rules.test.yaml`;

let binaries: Promise<{ prometheus: string; promtool: string }> | undefined;

export function prometheusBinaries(): Promise<{ prometheus: string; promtool: string }> {
  binaries ??= run('bash', [`${PROJECT_ROOT}scripts/install-services.sh`, 'prometheus'], { timeout: 900_000 }).then(
    ({ stdout }) => {
      const [prometheus, promtool] = stdout.trim().split('\n').slice(-2);
      if (!prometheus || !promtool) throw new Error(`install-services.sh prometheus printed no paths: ${stdout}`);
      return { prometheus, promtool };
    },
    (error: Error & { stderr?: string }) => {
      throw new Error(`building Prometheus failed: ${error.stderr?.trim().split('\n').at(-1) ?? error.message}`);
    },
  );
  return binaries;
}

/** Runs promtool; resolves with its exit code and output whatever the code (tests assert on them). */
export async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  const { promtool: bin } = await prometheusBinaries();
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
  });
}

export interface PrometheusRule {
  name: string;
  type: 'alerting' | 'recording';
  /** alerting rules: inactive, pending or firing (the most advanced of its alerts). */
  state?: 'inactive' | 'pending' | 'firing';
  alerts?: { labels: Record<string, string>; state: 'pending' | 'firing'; value: string }[];
  health: string;
  lastError?: string;
}

export interface PrometheusInstance {
  url: string;
  /** GET on the HTTP API; fails on a non-success answer. */
  api<T>(path: string): Promise<T>;
  /** Every rule of every group, as /api/v1/rules reports it. */
  rules(): Promise<PrometheusRule[]>;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * A Prometheus of the test's own on a free loopback port, with a fresh data directory: scrapes the
 * given targets' /metrics every `intervalSeconds` and evaluates the rule files as often.
 */
export async function startPrometheus(options: { targets: string[]; ruleFiles: string[]; intervalSeconds?: number }): Promise<PrometheusInstance> {
  const { prometheus } = await prometheusBinaries();
  const dir = await mkdtemp(join(tmpdir(), 'kvdr-prometheus-'));
  const [port] = (await freePorts(1)) as [number];
  const interval = `${options.intervalSeconds ?? 1}s`;
  const config = join(dir, 'prometheus.yml');
  // JSON is YAML: no quoting rules to get wrong. honor_labels stays false (the default), as most
  // installs scrape: kvdr's job label arrives as exported_job, which the rules handle.
  await writeFile(
    config,
    JSON.stringify({
      global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
      rule_files: options.ruleFiles,
      scrape_configs: [{ job_name: 'kvdr', static_configs: [{ targets: options.targets }] }],
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    prometheus,
    [`--config.file=${config}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (!res.ok || body.status !== 'success') throw new Error(`Prometheus ${path}: ${res.status} ${body.error ?? ''}`);
    return body.data;
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Prometheus exited during start-up: ${log}`);
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stopServer(child, dir);
      throw new Error(`Prometheus not ready after 30 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    api,
    rules: async () => (await api<{ groups: { rules: PrometheusRule[] }[] }>('/api/v1/rules')).groups.flatMap((g) => g.rules),
    logs: () => log,
    stop: () => stopServer(child, dir),
  };
}

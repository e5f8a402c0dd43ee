import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/loader.js';
import { ConfigError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';

const minimal = `
sources:
  - {name: px-etcd, type: etcd, endpoints: ["http://127.0.0.1:2379"], clusterId: c1}
repositories:
  - {name: local, type: fs, path: /tmp/kvdr}
jobs:
  - {name: hourly, source: px-etcd, kind: etcd-snapshot, schedule: "0 * * * *", repository: local}
`;

function errorOf(text: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseConfig(text, 'kvdr.yaml', env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected the config to be rejected');
}

describe('configuration', () => {
  it('accepts the documented example, which uses every option', async () => {
    const text = await readFile(new URL('../../config/kvdr.example.yaml', import.meta.url), 'utf8');
    const config = parseConfig(text, 'kvdr.example.yaml', { KVDR_ETCD_ENDPOINT: 'http://10.0.0.1:2379' });
    expect(config.sources[0]?.endpoints).toEqual(['http://10.0.0.1:2379']);
    expect(config.jobs.map((j) => j.kind)).toEqual(['etcd-snapshot', 'etcd-export', 'consul-snapshot', 'consul-export', 'px-dumps', 'etcd-continuous', 'restore-test', 'verify']);
    expect(config.jobs.at(-1)?.verify).toEqual({ sample: 5 });
    expect(config.repositories[0]).toMatchObject({ type: 's3', bucket: 'kvdr-backups', partSizeMiB: 8, queueSize: 2 });
  });

  it('accepts the demo config, whose drill restores into a scratch prefix', async () => {
    const text = await readFile(new URL('../../config/demo.yaml', import.meta.url), 'utf8');
    const config = parseConfig(text, 'demo.yaml', {});
    expect(config.jobs.find((j) => j.kind === 'restore-test')?.drill).toEqual({ job: 'etcd-export', toPrefix: 'kvdr-drill/' });
  });

  it('fills defaults', () => {
    const config = parseConfig(minimal, 'kvdr.yaml', {});
    expect(config.jobs[0]).toMatchObject({ compression: 'gzip', timezone: 'UTC', retries: 3 });
    expect(config.jobs[0]?.retention).toEqual({ keepLast: 24, daily: 7, weekly: 4, monthly: 12, minDays: 35 });
    expect(config.service.listen).toBe('127.0.0.1:9464');
    expect(config.pxDumps.dirs).toEqual(['/var/cores/kvdb_dump']);
    expect(config.audit.rpoMinutes).toBe(60);
  });

  it('names the field and the allowed values of a bad enum', () => {
    const err = errorOf(minimal.replace('kind: etcd-snapshot', 'kind: etcd-snap'));
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toBe(
      'kvdr.yaml: jobs[0].kind: expected one of etcd-snapshot, etcd-export, consul-snapshot, consul-export, px-dumps, etcd-continuous, consul-continuous, restore-test, verify',
    );
  });

  it('names a missing required field', () => {
    expect(errorOf(minimal.replace('path: /tmp/kvdr', 'ignored: 1')).message).toMatch(/repositories\[0\]\.(path: required|ignored)/);
    expect(errorOf(minimal.replace('type: fs, ', '')).message).toBe('kvdr.yaml: repositories[0].type: expected one of s3, fs');
  });

  it('rejects unknown options so typos do not pass silently', () => {
    expect(errorOf(minimal.replace('clusterId: c1', 'clusterID: c1')).message).toBe(
      'kvdr.yaml: sources[0]: unknown option clusterID (see config/kvdr.example.yaml)',
    );
  });

  it('needs endpoints for etcd but lets Consul fall back to CONSUL_HTTP_ADDR', () => {
    expect(errorOf(minimal.replace(', endpoints: ["http://127.0.0.1:2379"]', '')).message).toBe(
      'kvdr.yaml: sources[0].endpoints: list at least one etcd endpoint',
    );
    const consul = minimal.replace('type: etcd, endpoints: ["http://127.0.0.1:2379"]', 'type: consul').replace('etcd-snapshot', 'consul-snapshot');
    expect(parseConfig(consul, 'kvdr.yaml', {}).sources[0]?.endpoints).toEqual([]);
  });

  it('rejects an invalid cron schedule', () => {
    expect(errorOf(minimal.replace('0 * * * *', 'every hour')).message).toMatch(/^kvdr\.yaml: jobs\[0\]\.schedule: not a valid cron/);
  });

  it('interpolates ${VAR} and ${VAR:-default}, and names an unset variable', () => {
    const text = minimal.replace('/tmp/kvdr', '"${REPO_DIR}"').replace('http://127.0.0.1:2379', '${ETCD:-http://e:2379}');
    const config = parseConfig(text, 'kvdr.yaml', { REPO_DIR: '/srv/backups' });
    expect(config.repositories[0]).toMatchObject({ path: '/srv/backups' });
    expect(config.sources[0]?.endpoints).toEqual(['http://e:2379']);
    expect(errorOf(text, {}).message).toBe(
      'repositories[0].path: environment variable REPO_DIR is not set; export it or write ${REPO_DIR:-default}',
    );
  });

  it('does not let an environment value inject YAML structure', () => {
    const text = minimal.replace('/tmp/kvdr', '"${REPO_DIR}"');
    const config = parseConfig(text, 'kvdr.yaml', { REPO_DIR: '/x\nextra: [1, 2]' });
    expect(config.repositories[0]).toMatchObject({ path: '/x\nextra: [1, 2]' });
  });

  it('checks references between sections', () => {
    expect(errorOf(minimal.replace('source: px-etcd', 'source: nope')).message).toBe(
      'kvdr.yaml: jobs[0].source: no source named "nope"; define it under sources (known: px-etcd)',
    );
    expect(errorOf(minimal.replace('repository: local', 'repository: dr')).message).toMatch(/jobs\[0\]\.repository: no repository named "dr"/);
    expect(errorOf(minimal.replace('kind: etcd-snapshot', 'kind: consul-snapshot')).message).toBe(
      'kvdr.yaml: jobs[0].kind: consul-snapshot needs a consul source, but "px-etcd" is etcd',
    );
  });

  it('checks restore drills: a tested backup job, and never a restore over the live cluster', () => {
    const drill = (extra: string): string => `${minimal}  - {name: drill, source: px-etcd, kind: restore-test, schedule: "0 4 * * 0", ${extra}}\n`;
    expect(parseConfig(drill('drill: {job: hourly, toPrefix: scratch/}'), 'kvdr.yaml', {}).jobs[1]?.drill).toEqual({ job: 'hourly', toPrefix: 'scratch/' });
    expect(errorOf(drill('drill: {job: hourly, toPrefix: scratch}')).message).toBe("kvdr.yaml: jobs[1].drill.toPrefix: must end with '/' (drills restore under <toPrefix><run id>/)");
    expect(errorOf(drill('')).message).toBe('kvdr.yaml: jobs[1].drill: a restore-test job names the job it tests: drill: {job: <name>}');
    expect(errorOf(drill('drill: {job: nope, toPrefix: s/}')).message).toBe('kvdr.yaml: jobs[1].drill.job: no backup job named "nope" (known: hourly)');
    expect(errorOf(drill('drill: {job: hourly}')).message).toMatch(/^kvdr\.yaml: jobs\[1\]\.drill\.toPrefix: the drill would restore into "px-etcd", the cluster job hourly backs up/);
    expect(errorOf(minimal.replace(', repository: local}', '}')).message).toBe('kvdr.yaml: jobs[0].repository: name the repository this job stores its backups in');
  });

  it('takes verify jobs: no source, no repository, a sample or all', () => {
    const verify = (extra: string): string => `${minimal}  - {name: verify, kind: verify, schedule: "15 5 * * *"${extra}}\n`;
    expect(parseConfig(verify(''), 'kvdr.yaml', {}).jobs[1]).toMatchObject({ kind: 'verify' });
    expect(parseConfig(verify(', verify: {all: true}'), 'kvdr.yaml', {}).jobs[1]?.verify).toEqual({ all: true });
    expect(errorOf(verify(', verify: {all: true, sample: 2}')).message).toBe('kvdr.yaml: jobs[1].verify: give exactly one of sample: <n> or all: true');
    expect(errorOf(verify(', source: px-etcd')).message).toBe('kvdr.yaml: jobs[1].source: a verify job checks backups in every repository; remove it');
    expect(errorOf(verify(', repository: local')).message).toBe('kvdr.yaml: jobs[1].repository: a verify job checks backups in every repository; remove it');
    expect(errorOf(`${minimal}  - {name: x, kind: etcd-export, schedule: "0 * * * *", repository: local}\n`).message).toBe('kvdr.yaml: jobs[1].source: name the source this job works on');
    expect(errorOf(`${minimal}  - {name: x, source: px-etcd, kind: etcd-export, schedule: "0 * * * *", repository: local, verify: {sample: 1}}\n`).message).toBe('kvdr.yaml: jobs[1].verify: only verify jobs have a verify block');
  });

  it('rejects duplicate names', () => {
    const text = minimal.replace('repositories:\n', 'repositories:\n  - {name: local, type: fs, path: /a}\n');
    expect(errorOf(text).message).toBe('kvdr.yaml: repositories[1].name: "local" is used twice; names must be unique');
  });

  it('reports YAML syntax errors with the line', () => {
    expect(errorOf('sources: [\n  {name: x\n').message).toMatch(/^kvdr\.yaml:\d+:\d+: not valid YAML: /);
  });

  it('keeps every message on one line', () => {
    const bad = [minimal.replace('type: etcd', 'type: zookeeper'), 'repositories: 3', 'jobs: [{}]', minimal.replace('0 * * * *', '')];
    for (const text of bad) expect(errorOf(text).message).not.toContain('\n');
  });
});

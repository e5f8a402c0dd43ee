import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsStore } from '../../src/repository/fs-store.js';
import { manifestKey } from '../../src/repository/layout.js';
import { VERSION } from '../../src/util/version.js';
import { kvdr, runCli } from '../harness/cli.js';
import { sampleManifest } from '../harness/manifests.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv } from '../harness/namespace.js';

const CONTRACT_COMMANDS = ['serve', 'backup', 'backups', 'restore-from-s3', 'restore', 'verify', 'prune', 'audit', 'inspect'];

describe('kvdr CLI contract', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function configFile(name: string, text: string): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  }

  it('--help lists every command of the contract and the exit codes', async () => {
    const { code, stdout } = await kvdr(['--help']);
    expect(code).toBe(0);
    for (const command of CONTRACT_COMMANDS) expect(stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
    expect(stdout).toContain('3 restore aborted');
  });

  it('--version prints the package version', async () => {
    expect((await kvdr(['--version'])).stdout.trim()).toBe(VERSION);
  });

  it.each([
    ['restore-from-s3', ['--target', '--backup', '--latest', '--job', '--kind', '--before', '--cluster-id', '--prefix', '--to-prefix', '--force', '--dry-run', '--no-safety-backup']],
    ['restore', ['--kvdb_dump_file', '--file', '--target', '--cluster-id', '--force', '--dry-run']],
    ['verify', ['--backup', '--all', '--sample']],
    ['prune', ['--dry-run']],
    ['audit', ['--since', '--until', '--format', '--out', '--verify-log']],
  ])('%s registers the contract flags', async (command, flags) => {
    const { code, stdout } = await kvdr([command, '--help']);
    expect(code).toBe(0);
    for (const flag of flags) expect(stdout).toContain(flag);
  });

  it('exits 2 with one line on an unknown flag or command', async () => {
    for (const args of [['restore-from-s3', '--bogus'], ['frobnicate'], ['backups', 'list', '--kind', 'zip']]) {
      const { code, stderr } = await kvdr(args);
      expect(code, args.join(' ')).toBe(2);
      expect(stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(stderr).toMatch(/^kvdr: /);
    }
  });

  it('exits 2 with one line naming the field of an invalid config', async () => {
    const path = await configFile(
      'bad.yaml',
      'sources: [{name: e, type: etcd, endpoints: ["http://127.0.0.1:2379"]}]\n' +
        'repositories: [{name: r, type: fs, path: /tmp/x}]\n' +
        'jobs: [{name: j, source: e, kind: etcd-snap, schedule: "0 * * * *", repository: r}]\n',
    );
    const { code, stderr } = await kvdr(['--config', path, 'backups', 'list']);
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('jobs[0].kind: expected one of etcd-snapshot, etcd-export, consul-snapshot, consul-export, px-dumps');
  });

  it('exits 2 when the config file is missing, and reads KVDR_CONFIG', async () => {
    const missing = join(dir, 'nope.yaml');
    const viaFlag = await kvdr(['--config', missing, 'backups', 'list']);
    expect(viaFlag.code).toBe(2);
    expect(viaFlag.stderr).toContain(`config file ${missing} not found`);
    const viaEnv = await kvdr(['backups', 'list'], { KVDR_CONFIG: missing });
    expect(viaEnv.code).toBe(2);
    expect(viaEnv.stderr).toContain(missing);
  });

  describe('backups list', () => {
    let bucket: TestBucket;
    beforeAll(async () => {
      bucket = await createTestBucket('cli-list');
    });
    afterAll(async () => {
      await bucket.remove();
    });

    const s3Env = (): NodeJS.ProcessEnv => ({
      AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'),
      AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY'),
    });
    const s3Config = (bucketName: string): string =>
      `repositories:\n  - name: dr\n    type: s3\n    bucket: ${bucketName}\n    region: ${requireEnv('KVDR_S3_REGION')}\n` +
      `    endpoint: ${requireEnv('KVDR_S3_ENDPOINT')}\n    forcePathStyle: true\n`;

    it('shows an empty catalog of a new MinIO bucket, in text and JSON', async () => {
      const path = await configFile('s3.yaml', s3Config(bucket.name));
      const text = await kvdr(['--config', path, 'backups', 'list'], s3Env());
      expect(text.stderr).toBe('');
      expect(text.code).toBe(0);
      expect(text.stdout).toContain('no backups yet in dr');
      const json = await kvdr(['--config', path, 'backups', 'list', '--json'], s3Env());
      expect(JSON.parse(json.stdout)).toEqual([]);
    });

    it('lists what the manifests in a repository say, filtered by job and kind', async () => {
      const repo = join(dir, 'repo');
      const store = new FsStore({ path: repo });
      const a = sampleManifest();
      const b = sampleManifest({ id: '20261123T020000Z-consul-daily-def456', job: 'consul-daily', kind: 'consul-export', finishedAt: '2026-11-23T02:00:01.000Z' });
      for (const m of [a, b]) await store.put(manifestKey(m.job, m.id), Buffer.from(JSON.stringify(m)));
      const path = await configFile('fs.yaml', `repositories: [{name: local, type: fs, path: ${repo}}]\n`);

      const all = await kvdr(['--config', path, 'backups', 'list']);
      expect(all.code).toBe(0);
      const lines = all.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^ID\s+JOB\s+KIND\s+FINISHED\s+KEYS\s+SIZE\s+REPOSITORY$/);
      expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([a.id, b.id]);

      const byKind = await kvdr(['--config', path, 'backups', 'list', '--kind', 'consul-export', '--json']);
      expect((JSON.parse(byKind.stdout) as { id: string }[]).map((m) => m.id)).toEqual([b.id]);
      const byJob = await kvdr(['--config', path, '--json', 'backups', 'list', '--job', 'etcd-hourly']);
      expect((JSON.parse(byJob.stdout) as { id: string }[]).map((m) => m.id)).toEqual([a.id]);
    });

    it('exits 4 naming a damaged manifest', async () => {
      const repo = join(dir, 'damaged');
      await new FsStore({ path: repo }).put(manifestKey('j', 'x'), Buffer.from('{not json'));
      const path = await configFile('damaged.yaml', `repositories: [{name: local, type: fs, path: ${repo}}]\n`);
      const { code, stderr } = await kvdr(['--config', path, 'backups', 'list']);
      expect(code).toBe(4);
      expect(stderr.trim()).toContain('manifest manifests/j/x.json is not valid JSON');
    });

    it('exits 1 with one line when the bucket does not exist', async () => {
      const path = await configFile('missing-bucket.yaml', s3Config(`${bucket.name}-missing`));
      const { code, stderr } = await kvdr(['--config', path, 'backups', 'list'], s3Env());
      expect(code).toBe(1);
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toContain('the bucket does not exist');
    });
  });
});

describe('px-kvdb-restore drop-in', () => {
  it('shows the original tool usage: run, --kvdb_dump_file, --force', async () => {
    const top = await runCli('px-kvdb-restore', ['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('Usage: px-kvdb-restore run --kvdb_dump_file <file> [--force]');
    const run = await runCli('px-kvdb-restore', ['run', '--help']);
    expect(run.stdout).toContain('--kvdb_dump_file <file>');
    expect(run.stdout).toContain('--force');
  });

  it('requires --kvdb_dump_file (exit 2)', async () => {
    const { code, stderr } = await runCli('px-kvdb-restore', ['run']);
    expect(code).toBe(2);
    expect(stderr).toContain('--kvdb_dump_file');
  });
});

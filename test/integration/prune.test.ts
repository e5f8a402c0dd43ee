import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsStore } from '../../src/repository/fs-store.js';
import { manifestKey } from '../../src/repository/layout.js';
import { kvdr } from '../harness/cli.js';
import { sampleManifest } from '../harness/manifests.js';

const DAY = 86_400_000;

describe('kvdr prune', () => {
  let dir: string;
  let repo: string;
  let config: string;
  const ids: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-prune-'));
    repo = join(dir, 'repo');
    const store = new FsStore({ path: repo });
    // Ten daily backups, the newest 1 day old; retention keeps the last 3 and anything under 5 days.
    for (let i = 1; i <= 10; i++) {
      const at = new Date(Date.now() - i * DAY).toISOString();
      const id = `${at.slice(0, 10).replace(/-/g, '')}T000000Z-nightly-${String(i).padStart(6, '0')}`;
      const key = `data/nightly/${id}.ndjson.gz`;
      await store.put(key, Buffer.from(`artifact ${i}`));
      await store.put(manifestKey('nightly', id), Buffer.from(JSON.stringify(sampleManifest({ id, job: 'nightly', finishedAt: at, startedAt: at, repository: { name: 'local', type: 'fs', location: repo, key } }))));
      ids.push(id);
    }
    const safetyKey = 'data/safety-backup/s.ndjson.gz';
    const oldAt = new Date(Date.now() - 100 * DAY).toISOString();
    await store.put(safetyKey, Buffer.from('safety'));
    await store.put(manifestKey('safety-backup', '20200101T000000Z-safety-backup-abcdef'), Buffer.from(JSON.stringify(sampleManifest({ id: '20200101T000000Z-safety-backup-abcdef', job: 'safety-backup', kind: 'safety-backup', finishedAt: oldAt, startedAt: oldAt, repository: { name: 'local', type: 'fs', location: repo, key: safetyKey } }))));
    await store.put('data/nightly/orphan-old.ndjson.gz', Buffer.from('interrupted long ago'));
    const old = new Date(Date.now() - 3 * DAY);
    await utimes(join(repo, 'data', 'nightly', 'orphan-old.ndjson.gz'), old, old);
    await store.put('data/nightly/orphan-uploading.ndjson.gz', Buffer.from('still uploading'));
    config = join(dir, 'kvdr.yaml');
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["http://127.0.0.1:2379"]}]\n` +
        `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
        `jobs: [{name: nightly, source: e, kind: etcd-export, schedule: "0 0 * * *", repository: local,\n` +
        `        retention: {keepLast: 3, daily: 0, weekly: 0, monthly: 0, minDays: 5}}]\n`,
    );
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('--dry-run names what it would delete and why, and deletes nothing', async () => {
    const before = await readdir(join(repo, 'data', 'nightly'));
    const { code, stdout } = await kvdr(['--config', config, 'prune', '--dry-run']);
    expect(code).toBe(0);
    expect(stdout).toContain('would delete 6 backups and 1 orphaned artifacts; kept 4');
    for (const id of ids.slice(4)) expect(stdout).toContain(id);
    expect(stdout).toContain('outside every retention rule');
    expect(stdout).toContain('data/nightly/orphan-old.ndjson.gz');
    expect(await readdir(join(repo, 'data', 'nightly'))).toEqual(before);
  });

  it('deletes nothing when the audit trail cannot be written: no deletion goes unrecorded', async () => {
    const blocker = join(dir, 'not-a-directory');
    await writeFile(blocker, 'a file where the trail repository should be');
    const unauditable = join(dir, 'unauditable.yaml');
    await writeFile(
      unauditable,
      (await readFile(config, 'utf8')).replace(`repositories: [{name: local, type: fs, path: ${repo}}]`, `repositories: [{name: local, type: fs, path: ${repo}}, {name: trail, type: fs, path: ${blocker}/trail}]`) +
        'audit: {repository: trail}\n',
    );
    const before = await readdir(join(repo, 'data', 'nightly'));
    const { code, stderr } = await kvdr(['--config', unauditable, '--log-level', 'silent', 'prune']);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(await readdir(join(repo, 'data', 'nightly'))).toEqual(before);
    expect(await readdir(join(repo, 'manifests', 'nightly'))).toHaveLength(10);
  });

  it('deletes expired backups (manifest and artifact) and old orphans, keeps the rest, and audits each deletion', async () => {
    const { code, stdout } = await kvdr(['--config', config, 'prune']);
    expect(code).toBe(0);
    expect(stdout).toContain('deleted 6 backups and 1 orphaned artifacts; kept 4');
    const listed = JSON.parse((await kvdr(['--config', config, 'backups', 'list', '--json'])).stdout) as { id: string }[];
    expect(listed.map((m) => m.id).sort()).toEqual([...ids.slice(0, 4), '20200101T000000Z-safety-backup-abcdef'].sort());
    const data = await readdir(join(repo, 'data', 'nightly'));
    expect(data).toContain('orphan-uploading.ndjson.gz');
    expect(data).not.toContain('orphan-old.ndjson.gz');
    for (const id of ids.slice(4)) expect(data).not.toContain(`${id}.ndjson.gz`);
    expect(await readdir(join(repo, 'audit'))).toHaveLength(7);
    const again = await kvdr(['--config', config, 'prune']);
    expect(again.stdout).toContain('deleted 0 backups and 0 orphaned artifacts; kept 4');
  });
});

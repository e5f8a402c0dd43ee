import { mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAuditEvent, readTrail, verifyTrail, type AuditEvent } from '../../src/audit/audit-log.js';
import { S3Store } from '../../src/repository/s3-store.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr } from '../harness/cli.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';

describe('the audit trail', () => {
  let dir: string;
  let configPath: string;
  const repo = (): string => join(dir, 'repo');
  const events = async (): Promise<AuditEvent[]> =>
    Promise.all((await readdir(join(repo(), 'audit'))).sort().map(async (f) => JSON.parse(await readFile(join(repo(), 'audit', f), 'utf8')) as AuditEvent));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-trail-'));
    configPath = join(dir, 'kvdr.yaml');
    const scope = `${uniqueName('trail')}/`;
    await writeFile(
      configPath,
      JSON.stringify({
        sources: [
          { name: 'etcd', type: 'etcd', endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')], prefix: scope },
          { name: 'gone', type: 'etcd', endpoints: ['http://127.0.0.1:9'], prefix: scope },
        ],
        repositories: [{ name: 'local', type: 'fs', path: repo() }],
        jobs: [
          { name: 'export', source: 'etcd', kind: 'etcd-export', schedule: '0 * * * *', repository: 'local' },
          { name: 'broken', source: 'gone', kind: 'etcd-export', schedule: '0 * * * *', repository: 'local', retries: 0 },
        ],
      }),
    );
    expect((await kvdr(['--config', configPath, 'backup', 'export'])).code).toBe(0);
    expect((await kvdr(['--config', configPath, 'backup', 'broken'])).code).toBe(1);
    expect((await kvdr(['--config', configPath, 'backup', 'export'])).code).toBe(0);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('records every backup and every failed run, each event holding the sha256 of the one before', async () => {
    const trail = await events();
    expect(trail.map((e) => [e.seq, e.type, e.subject['job']])).toEqual([
      [1, 'backup', 'export'],
      [2, 'backup-failed', 'broken'],
      [3, 'backup', 'export'],
    ]);
    expect(trail[0]?.prev).toBe('0'.repeat(64));
    expect(trail[1]?.subject['error']).toMatch(/127\.0\.0\.1:9/);
    expect(trail[0]?.subject['backup']).toMatch(/-export-[0-9a-f]{6}$/);

    const ok = await kvdr(['--config', configPath, 'audit', '--verify-log']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/3 events, hash chain intact; head sha256 [0-9a-f]{64}/);
  });

  it('names the event after an edited one as the first broken link, and exits 4', async () => {
    const path = join(repo(), 'audit', '000000000002.json');
    const original = await readFile(path, 'utf8');
    await writeFile(path, original.replace('"backup-failed"', '"backup"'));
    try {
      const broken = await kvdr(['--config', configPath, 'audit', '--verify-log']);
      expect(broken.code).toBe(ExitCode.Integrity);
      expect(broken.stderr.trim().split('\n')).toHaveLength(1);
      expect(broken.stderr).toContain('first broken link at audit/000000000003.json');
      expect(broken.stderr).toContain('audit/000000000002.json: that event was edited');
    } finally {
      await writeFile(path, original);
    }
  });

  it('names the gap where an event was removed', async () => {
    const path = join(repo(), 'audit', '000000000002.json');
    const original = await readFile(path, 'utf8');
    await unlink(path);
    try {
      const broken = await kvdr(['--config', configPath, 'audit', '--verify-log']);
      expect(broken.code).toBe(ExitCode.Integrity);
      expect(broken.stderr).toContain('at audit/000000000003.json: event 2 is missing before it');
    } finally {
      await writeFile(path, original);
    }
    expect((await kvdr(['--config', configPath, 'audit', '--verify-log'])).code).toBe(0);
  });

  describe('in S3', () => {
    let bucket: TestBucket;
    beforeAll(async () => {
      bucket = await createTestBucket('trail');
    });
    afterAll(async () => {
      await bucket.remove();
    });

    it('stays one unbroken chain when many writers append at once', async () => {
      const writers = Array.from({ length: 4 }, () => new S3Store(bucket.repository()));
      try {
        await Promise.all(Array.from({ length: 24 }, (_, i) => appendAuditEvent(writers[i % writers.length] as S3Store, 'verify', { n: i })));
        const check = await verifyTrail(writers[0] as S3Store);
        expect(check).toMatchObject({ events: 24 });
        expect(check.broken).toBeUndefined();
        const seen: number[] = [];
        for await (const item of readTrail(writers[0] as S3Store)) if ('event' in item) seen.push(Number(item.event.subject['n']));
        expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 24 }, (_, i) => i));
      } finally {
        await Promise.all(writers.map((w) => w.close()));
      }
    });
  });
});

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAuditEvent, auditKey } from '../../src/audit/audit-log.js';
import type { AuditReport, ControlId, ControlResult } from '../../src/audit/report/audit-report.js';
import { takeBackup } from '../../src/backup/run-backup.js';
import { configSchema, type KvdrConfig } from '../../src/config/schema.js';
import { manifestKey } from '../../src/repository/layout.js';
import type { Manifest } from '../../src/repository/manifest.js';
import { S3Store } from '../../src/repository/s3-store.js';
import { backupEventSubject } from '../../src/scheduler/run-job.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { readAll } from '../../src/util/streams.js';
import { kvdr } from '../harness/cli.js';
import { quietLogger } from '../harness/config.js';
import { fillEtcd } from '../harness/etcd-fill.js';
import { createTestBucket, minioClient, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';

const HOUR = 3_600_000;

/**
 * A day of hourly history, planted: `good` has every slot, verified, drilled, encrypted, locked and
 * off-site; `gappy` misses slots 5-7, fails for good at 10 and recovers at 12, loses an artifact at 15
 * and a whole backup at 16, and is never verified or drilled; `near` is stored unencrypted and unlocked
 * in its source's own region with no minimum retention; nothing backs up `uncovered`; one forced restore
 * skips its safety backup; and one event of the trail is edited.
 */
describe('kvdr audit over a planted history', () => {
  let locked: TestBucket;
  let plain: TestBucket;
  let etcd: Etcd3;
  let dir: string;
  let raw: Record<string, unknown>;
  const scope = `${uniqueName('audit')}/`;
  const scratch = `${uniqueName('audit-scratch')}/`;
  const hourNow = Math.floor(Date.now() / HOUR) * HOUR;
  const slot = (i: number): Date => new Date(hourNow - (24 - i) * HOUR);
  const since = new Date(hourNow - 24 * HOUR - 60_000);
  const ids = new Map<string, string>();
  const planted = new Map<string, Manifest>();
  let configPath: string;
  let cleanConfigPath: string;
  const until = (): string => new Date(Date.now() + 120_000).toISOString();

  beforeAll(async () => {
    locked = await createTestBucket('audit-locked', { objectLock: true });
    plain = await createTestBucket('audit-plain');
    etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    await fillEtcd(etcd, scope, 20, 32);
    dir = await mkdtemp(join(tmpdir(), 'kvdr-audit-'));
    const endpoint = requireEnv('KVDR_ETCD_ENDPOINT');
    raw = {
      sources: [
        { name: 'etcd', type: 'etcd', endpoints: [endpoint], prefix: scope, region: 'eu-central-1' },
        { name: 'etcd-near', type: 'etcd', endpoints: [endpoint], prefix: scope, region: requireEnv('KVDR_S3_REGION') },
        { name: 'uncovered', type: 'consul', endpoints: [requireEnv('KVDR_CONSUL_ADDR')], region: 'eu-central-1' },
      ],
      repositories: [
        { ...locked.repository({ sse: { mode: 'AES256' }, objectLock: { mode: 'GOVERNANCE', days: 1 } }), name: 'dr' },
        { ...plain.repository(), name: 'dr-near' },
      ],
      jobs: [
        { name: 'good', source: 'etcd', kind: 'etcd-export', schedule: '0 * * * *', repository: 'dr', timeoutMinutes: 5, retention: { minDays: 1 } },
        { name: 'gappy', source: 'etcd', kind: 'etcd-export', schedule: '0 * * * *', repository: 'dr', timeoutMinutes: 5, retention: { minDays: 1 } },
        { name: 'near', source: 'etcd-near', kind: 'etcd-export', schedule: '0 * * * *', repository: 'dr-near', timeoutMinutes: 5, retention: { minDays: 0 } },
        { name: 'drill-good', source: 'etcd', kind: 'restore-test', schedule: '0 4 * * 0', drill: { job: 'good', toPrefix: scratch } },
      ],
      audit: { repository: 'dr', rpoMinutes: 120, minRetentionDays: 1 },
    };
    const config = configSchema.parse(raw);
    configPath = join(dir, 'kvdr.yaml');
    await writeFile(configPath, JSON.stringify(raw));
    cleanConfigPath = join(dir, 'clean.yaml');
    const clean = { ...raw, sources: (raw['sources'] as { name: string }[]).filter((s) => s.name === 'etcd'), jobs: (raw['jobs'] as { name: string }[]).filter((j) => j.name === 'good' || j.name === 'drill-good') };
    await writeFile(cleanConfigPath, JSON.stringify(clean));

    const trail = new S3Store(config.repositories[0] as KvdrConfig['repositories'][number] & { type: 's3' });
    try {
      for (let i = 0; i <= 24; i++) {
        await plant(config, trail, 'good', slot(i));
        if ([5, 6, 7].includes(i)) continue;
        if (i === 10 || i === 12) {
          await appendAuditEvent(trail, 'backup-failed', { job: 'gappy', kind: 'etcd-export', repository: 'dr', trigger: 'schedule', slot: slot(i).toISOString(), startedAt: slot(i).toISOString(), error: `etcd unreachable at slot ${i}` }, () => new Date(slot(i).getTime() + 30_000));
          if (i === 10) continue;
        }
        const m = await plant(config, trail, 'gappy', new Date(slot(i).getTime() + (i === 12 ? 120_000 : 0)), slot(i));
        ids.set(`gappy-${i}`, m.id);
        planted.set(`gappy-${i}`, m);
      }
    } finally {
      await trail.close();
    }
    // Deletions behind kvdr's back: an artifact, then a whole backup (deleting a locked object's current version leaves a delete marker).
    const gone15 = planted.get('gappy-15') as Manifest;
    const gone16 = planted.get('gappy-16') as Manifest;
    const store = new S3Store(config.repositories[0] as KvdrConfig['repositories'][number] & { type: 's3' });
    await store.delete(gone15.repository.key);
    await store.delete(gone16.repository.key);
    await store.delete(manifestKey('gappy', gone16.id));
    await store.close();

    const cli = (...args: string[]): ReturnType<typeof kvdr> => kvdr(['--config', configPath, ...args]);
    expect((await cli('backup', 'near')).code).toBe(0);
    expect((await cli('backup', 'drill-good')).code).toBe(0);
    const latestGood = await cli('--json', 'backups', 'list', '--job', 'good');
    const goodIds = (JSON.parse(latestGood.stdout) as Manifest[]).map((m) => m.id);
    expect((await cli('verify', '--backup', goodIds.at(-1) as string)).code).toBe(0);
    const nearIds = (JSON.parse((await cli('--json', 'backups', 'list', '--job', 'near')).stdout) as Manifest[]).map((m) => m.id);
    expect((await cli('verify', '--backup', nearIds[0] as string)).code).toBe(0);
  }, 240_000);

  afterAll(async () => {
    await etcd.delete().prefix(scope);
    await etcd.delete().prefix(scratch);
    etcd.close();
    await locked.remove();
    await plain.remove();
    await rm(dir, { recursive: true, force: true });
  });

  /** A real backup of real etcd, as if taken at `at` for `forSlot`, recorded in the trail at that time. */
  async function plant(config: KvdrConfig, trail: S3Store, job: string, at: Date, forSlot: Date = at): Promise<Manifest> {
    const jobConfig = config.jobs.find((j) => j.name === job);
    const repository = config.repositories.find((r) => r.name === jobConfig?.repository);
    const source = config.sources.find((s) => s.name === jobConfig?.source);
    if (!repository || !source) throw new Error(`no job ${job}`);
    const store = new S3Store(repository as typeof repository & { type: 's3' });
    try {
      const run = { trigger: 'schedule', slot: forSlot.toISOString() };
      const manifest = await takeBackup({ store, repository, job, kind: 'etcd-export', produce: 'etcd-export', source, scope, compression: 'gzip', logger: quietLogger, now: () => at, details: run });
      await appendAuditEvent(trail, 'backup', backupEventSubject(manifest, run), () => at);
      return manifest;
    } finally {
      await store.close();
    }
  }

  const controlsOf = (report: AuditReport, subject: string): Partial<Record<ControlId, ControlResult>> =>
    Object.fromEntries(report.controls.filter((c) => c.subject === subject).map((c) => [c.control, c]));

  it('passes every control for a job kept the way the policy says, and exits 0', async () => {
    const { code, stdout, stderr } = await kvdr(['--config', cleanConfigPath, 'audit', '--since', since.toISOString(), '--until', until(), '--format', 'json']);
    const report = JSON.parse(stdout) as AuditReport;
    const failing = report.controls.filter((c) => c.status === 'FAIL').map((c) => `${c.control} ${c.subject}: ${c.summary}`);
    expect(failing, stderr).toEqual([]);
    expect(code).toBe(0);
    const good = controlsOf(report, 'good');
    expect(Object.keys(good).sort()).toEqual(['CROSS_REGION', 'EARLY_DELETION', 'ENCRYPTED', 'FREQUENCY', 'IMMUTABILITY', 'INTEGRITY', 'JOB_HEALTH', 'LAST_RECOVERY_POINT', 'MIN_RETENTION', 'RESTORE_TESTED', 'RESTORE_TIME', 'RETENTION_DEPTH']);
    expect(Object.values(good).every((c) => c.status === 'PASS')).toBe(true);
    expect(good.RESTORE_TIME?.summary).toMatch(/^newest drill restored 20 keys in \d+\.\d s \(RTO 60 min\)$/);
    expect(good.IMMUTABILITY?.evidence.map((e) => e.detail)).toEqual(expect.arrayContaining(['versioning: Enabled']));
  });

  describe('with a forced restore that skipped its safety backup, and an edited event', () => {
    let report: AuditReport;
    let code: number | null;
    let stderr: string;
    let editedSeq: number;

    beforeAll(async () => {
      const goodId = (JSON.parse((await kvdr(['--config', configPath, '--json', 'backups', 'list', '--job', 'good'])).stdout) as Manifest[]).at(-1)?.id as string;
      await etcd.put(`${scratch}forced/existing`).value('in the way');
      const forced = await kvdr(['--config', configPath, 'restore-from-s3', '--backup', goodId, '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', `${scratch}forced/`, '--force', '--no-safety-backup']);
      expect(forced.code, forced.stderr).toBe(0);

      editedSeq = 20;
      const client = minioClient();
      const store = new S3Store({ ...locked.repository() });
      const original = (await readAll(await store.get(auditKey(editedSeq)))).toString();
      await store.close();
      await client.send(new PutObjectCommand({ Bucket: locked.name, Key: auditKey(editedSeq), Body: original.replace(/"bytes":\d+/, '"bytes":1') }));

      const out = join(dir, 'report.json');
      ({ code, stderr } = await kvdr(['--config', configPath, 'audit', '--since', since.toISOString(), '--until', until(), '--format', 'json', '--out', out]));
      report = JSON.parse(await readFile(out, 'utf8')) as AuditReport;
    }, 120_000);

    it('exits 5 naming the failed controls in one line', () => {
      expect(code).toBe(ExitCode.ControlFailed);
      expect(stderr.trim().split('\n').at(-1)).toMatch(/^kvdr: \d+ of \d+ controls failed \(.*FREQUENCY.*\); see .*report\.json$/);
      expect(report.passed).toBe(false);
    });

    it('FREQUENCY counts exactly the four missed slots, JOB_HEALTH the one failure never made good', () => {
      const gappy = controlsOf(report, 'gappy');
      expect(gappy.FREQUENCY?.status).toBe('FAIL');
      expect(gappy.FREQUENCY?.evidence.map((e) => e.time)).toEqual([5, 6, 7, 10].map((i) => slot(i).toISOString()));
      expect(gappy.JOB_HEALTH?.status).toBe('FAIL');
      expect(gappy.JOB_HEALTH?.summary).toMatch(/^1 failed runs not made good/);
      expect(gappy.JOB_HEALTH?.evidence.map((e) => e.detail)).toEqual(['etcd unreachable at slot 10', `etcd unreachable at slot 12 (made good by ${ids.get('gappy-12') ?? ''})`]);
      expect(controlsOf(report, 'good').FREQUENCY?.status).toBe('PASS');
    });

    it('EARLY_DELETION names the lost artifact and the backup removed outside kvdr; RETENTION_DEPTH sees one missing', () => {
      const gappy = controlsOf(report, 'gappy');
      expect(gappy.EARLY_DELETION?.status).toBe('FAIL');
      expect(gappy.EARLY_DELETION?.evidence.map((e) => [e.ref, e.detail])).toEqual([
        [ids.get('gappy-15'), `artifact ${planted.get('gappy-15')?.repository.key ?? ''} was deleted; its manifest remains`],
        [ids.get('gappy-16'), 'deleted without a prune event: removed outside kvdr'],
      ]);
      expect(gappy.RETENTION_DEPTH?.status).toBe('FAIL');
      expect(gappy.RETENTION_DEPTH?.summary).toMatch(/^20 recovery points held; the policy keeps at least 21/);
      expect(controlsOf(report, 'good').EARLY_DELETION?.status).toBe('PASS');
    });

    it('INTEGRITY fails for the job never verified; RESTORE_TESTED for jobs no drill restored', () => {
      expect(controlsOf(report, 'gappy').INTEGRITY?.summary).toBe('no backup of gappy was ever verified; run kvdr verify');
      expect(controlsOf(report, 'gappy').INTEGRITY?.status).toBe('FAIL');
      expect(controlsOf(report, 'near').INTEGRITY?.status).toBe('PASS');
      expect(controlsOf(report, 'gappy').RESTORE_TESTED?.status).toBe('FAIL');
      expect(controlsOf(report, 'gappy').RESTORE_TIME?.status).toBe('N/A');
      expect(controlsOf(report, 'good').RESTORE_TESTED?.status).toBe('PASS');
    });

    it('the same-region, unencrypted, unlocked repository fails CROSS_REGION, ENCRYPTED, IMMUTABILITY and MIN_RETENTION', () => {
      const near = controlsOf(report, 'near');
      expect(near.CROSS_REGION).toMatchObject({ status: 'FAIL', summary: `source in ${requireEnv('KVDR_S3_REGION')}, repository dr-near in ${requireEnv('KVDR_S3_REGION')}` });
      expect(near.ENCRYPTED).toMatchObject({ status: 'FAIL', summary: '1 of 1 backups of the period are not encrypted' });
      expect(near.IMMUTABILITY?.status).toBe('FAIL');
      expect(near.IMMUTABILITY?.summary).toMatch(/^dr-near: versioning Off, object lock off/);
      expect(near.MIN_RETENTION).toMatchObject({ status: 'FAIL', summary: 'every backup is kept at least 0 days (required: 1)' });
      const good = controlsOf(report, 'good');
      expect([good.CROSS_REGION?.status, good.ENCRYPTED?.status, good.IMMUTABILITY?.status, good.MIN_RETENTION?.status]).toEqual(['PASS', 'PASS', 'PASS', 'PASS']);
    });

    it('COVERAGE fails for the source no job backs up', () => {
      expect(controlsOf(report, 'uncovered').COVERAGE).toMatchObject({ status: 'FAIL', summary: 'no backup job backs up uncovered' });
      expect(controlsOf(report, 'etcd').COVERAGE?.status).toBe('PASS');
    });

    it('RESTORE_GOVERNANCE names the forced restore without a safety backup; TRAIL_INTEGRITY the edited event', () => {
      const governance = report.controls.find((c) => c.control === 'RESTORE_GOVERNANCE');
      expect(governance?.status).toBe('FAIL');
      expect(governance?.evidence.map((e) => e.detail)).toEqual(['replaced keys with no safety backup (--no-safety-backup)']);
      const trail = report.controls.find((c) => c.control === 'TRAIL_INTEGRITY');
      expect(trail?.status).toBe('FAIL');
      expect(trail?.summary).toBe(`first broken link at ${auditKey(editedSeq + 1)}: its prev hash does not match ${auditKey(editedSeq)}: that event was edited after it was written`);
    });

    it('writes backup-job, restore-job and control-compliance reports as CSV, and markdown and HTML', async () => {
      const base = ['--config', configPath, 'audit', '--since', since.toISOString(), '--until', until()];
      const backups = await kvdr([...base, '--format', 'csv', '--report', 'backup-jobs']);
      expect(backups.code).toBe(ExitCode.ControlFailed);
      const rows = backups.stdout.trim().split('\r\n');
      expect(rows[0]).toBe('Report Time Period Start,Report Time Period End,Region,Backup Job Id,Job Status,Status Message,Resource Type,Resource Id,Backup Plan,Creation Date,Completion Date,Recovery Point Id,Job Run Time,Backup Size in Bytes,Backup Vault Name');
      expect(rows.filter((r) => r.includes(',FAILED,'))).toHaveLength(2);
      expect(rows.filter((r) => r.includes(',COMPLETED,') && r.includes(',gappy,'))).toHaveLength(21);
      const restores = await kvdr([...base, '--format', 'csv', '--report', 'restore-jobs']);
      expect(restores.stdout).toMatch(/,COMPLETED,,drill,/);
      expect(restores.stdout).toMatch(/,COMPLETED,,restore,.*,true,\r\n/);
      const controls = await kvdr([...base, '--format', 'json', '--report', 'controls']);
      const table = JSON.parse(controls.stdout) as Record<string, string>[];
      expect(table.find((r) => r['Control Name'] === 'CROSS_REGION' && r['Resource Id'] === 'near')?.['Control Compliance Status']).toBe('NON_COMPLIANT');
      const md = await kvdr([...base]);
      expect(md.stdout).toContain('| FREQUENCY | gappy | **FAIL** | 4 slots of "0 * * * *" missed |');
      const html = join(dir, 'report.html');
      expect((await kvdr([...base, '--format', 'html', '--out', html])).code).toBe(ExitCode.ControlFailed);
      const page = await readFile(html, 'utf8');
      for (const job of ['good', 'gappy', 'near', 'drill-good']) expect(page).toContain(`data-job="${job}"`);
    }, 60_000);

    it('--verify-log exits 4 naming the same link', async () => {
      const { code: logCode, stderr: logErr } = await kvdr(['--config', configPath, 'audit', '--verify-log']);
      expect(logCode).toBe(ExitCode.Integrity);
      expect(logErr).toContain(`first broken link at ${auditKey(editedSeq + 1)}`);
    });
  });
});

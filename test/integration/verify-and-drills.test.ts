import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrail, type AuditEvent } from '../../src/audit/audit-log.js';
import { readCatalog } from '../../src/repository/catalog.js';
import { S3Store } from '../../src/repository/s3-store.js';
import { verifyBackup } from '../../src/repository/verify-backup.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { readAll } from '../../src/util/streams.js';
import { kvdr } from '../harness/cli.js';
import { consulPairs, consulPut } from '../harness/consul-instance.js';
import { fillEtcd } from '../harness/etcd-fill.js';
import { etcdPairs } from '../harness/etcd-state.js';
import { createTestBucket, minioClient, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';

describe('verify and restore drills', () => {
  let bucket: TestBucket;
  let etcd: Etcd3;
  let dir: string;
  let configPath: string;
  const scope = `${uniqueName('drill')}/`;
  const scratch = `${uniqueName('scratch')}/`;
  const cli = (...args: string[]): ReturnType<typeof kvdr> => kvdr(['--config', configPath, ...args]);
  const trail = async (): Promise<AuditEvent[]> => {
    const store = new S3Store(bucket.repository());
    const out: AuditEvent[] = [];
    for await (const item of readTrail(store)) if ('event' in item) out.push(item.event);
    await store.close();
    return out;
  };

  beforeAll(async () => {
    bucket = await createTestBucket('verify');
    etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    await fillEtcd(etcd, scope, 300, 64);
    dir = await mkdtemp(join(tmpdir(), 'kvdr-verify-'));
    configPath = join(dir, 'kvdr.yaml');
    const repository = { ...bucket.repository(), name: 'dr' };
    await writeFile(
      configPath,
      JSON.stringify({
        sources: [
          { name: 'etcd', type: 'etcd', endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')], prefix: scope },
          { name: 'scratch-consul', type: 'consul', endpoints: [requireEnv('KVDR_CONSUL_ADDR')] },
        ],
        repositories: [repository],
        jobs: [
          { name: 'snap', source: 'etcd', kind: 'etcd-snapshot', schedule: '0 * * * *', repository: 'dr' },
          { name: 'exp', source: 'etcd', kind: 'etcd-export', schedule: '0 * * * *', repository: 'dr' },
          { name: 'drill-prefix', source: 'etcd', kind: 'restore-test', schedule: '0 4 * * 0', drill: { job: 'snap', toPrefix: scratch } },
          { name: 'drill-consul', source: 'scratch-consul', kind: 'restore-test', schedule: '0 4 * * 0', drill: { job: 'exp' } },
          { name: 'verify-all', kind: 'verify', schedule: '15 5 * * *', verify: { all: true } },
        ],
      }),
    );
    expect((await cli('backup', 'snap')).code).toBe(0);
    expect((await cli('backup', 'exp')).code).toBe(0);
  });
  afterAll(async () => {
    await etcd.delete().prefix(scope);
    etcd.close();
    await bucket.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('verify --all re-hashes every backup, checks the etcd trailer, and records each result', async () => {
    const { code, stdout, stderr } = await cli('verify', '--all');
    expect(stderr).not.toMatch(/"level":50/);
    expect(code).toBe(0);
    expect(stdout).toMatch(/-snap-[0-9a-f]{6}\s+snap\s+ok\s+.*sha256, etcd sha256 trailer/);
    expect(stdout).toMatch(/-exp-[0-9a-f]{6}\s+exp\s+ok\s+.*sha256$/m);
    const verifies = (await trail()).filter((e) => e.type === 'verify');
    expect(verifies.map((e) => [e.subject['job'], e.subject['result']]).sort()).toEqual([['exp', 'ok'], ['snap', 'ok']]);
  });

  it('verify --sample 1 checks one backup', async () => {
    const { code, stdout } = await cli('verify', '--sample', '1');
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(2);
  });

  it('a verify job checks every backup and records each result under its name', async () => {
    const { code, stdout } = await cli('backup', 'verify-all');
    expect(code).toBe(0);
    expect(stdout.trim()).toBe('verified 2 backups: each matches its manifest');
    const mine = (await trail()).filter((e) => e.type === 'verify' && e.subject['verifyJob'] === 'verify-all');
    expect(mine.filter((e) => 'backup' in e.subject).map((e) => [e.subject['job'], e.subject['result'], e.subject['trigger']]).sort()).toEqual([['exp', 'ok', 'manual'], ['snap', 'ok', 'manual']]);
    // and one event for the run as a whole, which is what the job's last success is read from
    expect(mine.at(-1)?.subject).toMatchObject({ checked: 2, failed: 0, result: 'ok' });
  });

  it('exits 4 naming a backup whose stored bytes changed, and records the mismatch', async () => {
    const store = new S3Store(bucket.repository());
    const [exp] = await readCatalog(store, { job: 'exp' });
    if (!exp) throw new Error('no export backup');
    const bytes = await readAll(await store.get(exp.repository.key));
    await store.close();
    const middle = bytes.length >> 1;
    bytes.writeUInt8(bytes.readUInt8(middle) ^ 0xff, middle);
    await minioClient().send(new PutObjectCommand({ Bucket: bucket.name, Key: exp.repository.key, Body: bytes }));

    const { code, stderr } = await cli('verify', '--backup', exp.id);
    expect(code).toBe(ExitCode.Integrity);
    expect(stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^kvdr: 1 of 1 backups failed verification \\(${exp.id}: (mismatch|damaged)\\)`));
    const last = (await trail()).at(-1);
    expect(last?.type).toBe('verify');
    expect(last?.subject).toMatchObject({ backup: exp.id });
    expect(last?.subject['result']).not.toBe('ok');
  });

  it('a verify job fails with exit 4 when a backup no longer matches its manifest', async () => {
    const { code, stderr } = await cli('backup', 'verify-all');
    expect(code).toBe(ExitCode.Integrity);
    expect((await trail()).at(-1)?.subject).toMatchObject({ verifyJob: 'verify-all', checked: 2, failed: 1, result: 'failed' });
    expect(stderr.trim().split('\n').at(-1)).toMatch(/^kvdr: 1 of 2 backups failed verification \(\S+-exp-[0-9a-f]{6}: (mismatch|damaged)\)/);
  });

  it("finds an etcd snapshot whose own sha256 trailer does not match, even when the manifest's hash does", async () => {
    const store = new S3Store(bucket.repository());
    const [snap] = await readCatalog(store, { job: 'snap' });
    if (!snap) throw new Error('no snapshot backup');
    const { gunzipSync } = await import('node:zlib');
    const db = gunzipSync(await readAll(await store.get(snap.repository.key)));
    db.writeUInt8(db.readUInt8(4196) ^ 0x01, 4196);
    const key = `data/snap/${snap.id}-damaged.db`;
    await store.put(key, db);
    const { createHash } = await import('node:crypto');
    const damaged = { ...snap, compression: 'none' as const, sha256: createHash('sha256').update(db).digest('hex'), bytes: { raw: db.length, stored: db.length }, repository: { ...snap.repository, key } };
    const result = await verifyBackup(store, damaged);
    await store.close();
    expect(result.result).toBe('damaged');
    expect(result.detail).toContain('sha256 trailer mismatch');
  });

  it('a drill restores the latest snapshot under a fresh scratch prefix, checks it, times it and cleans up', async () => {
    const { code, stdout, stderr } = await cli('backup', 'drill-prefix');
    expect(stderr).not.toMatch(/error/i);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^drill drill-prefix: restored 300 keys of \\S+-snap-[0-9a-f]{6} into etcd:\\S+ under "${scratch}\\S+/", verified, in \\d+\\.\\ds \\(RTO\\), and cleaned up`));
    expect((await etcdPairs(etcd, scratch)).size).toBe(0);
    expect((await etcdPairs(etcd, scope)).size).toBe(300);
    const events = await trail();
    const drill = events.filter((e) => e.type === 'drill').at(-1);
    expect(drill?.subject).toMatchObject({ drill: 'drill-prefix', testedJob: 'snap', result: 'ok', records: 300, cleanedUp: true });
    expect(Number(drill?.subject['rtoMs'])).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'restore').at(-1)?.subject).toMatchObject({ drill: 'drill-prefix', written: 300 });
  });

  it('a drill into a separate cluster refuses a scratch scope that holds keys, touches nothing, and records the failure', async () => {
    const consul = requireEnv('KVDR_CONSUL_ADDR');
    // An earlier test damaged the export it had; the drill takes the newest.
    expect((await cli('backup', 'exp')).code).toBe(0);
    await consulPut(consul, `${scope}someone-elses`, 'keep me');
    const refused = await cli('backup', 'drill-consul');
    expect(refused.code).toBe(ExitCode.ScopeNotEmpty);
    expect(refused.stderr.trim().split('\n').at(-1)).toContain(`the drill's scratch scope "${scope}" already holds 1 keys`);
    expect([...(await consulPairs(consul, scope)).keys()]).toEqual([`${scope}someone-elses`]);
    expect((await trail()).at(-1)?.subject).toMatchObject({ drill: 'drill-consul', result: 'failed' });

    await fetch(`${consul}/v1/kv/${scope}someone-elses`, { method: 'DELETE' });
    const ok = await cli('backup', 'drill-consul');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('restored 300 keys');
    expect((await consulPairs(consul, scope)).size).toBe(0);
  });
});

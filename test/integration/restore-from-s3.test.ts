import { PutObjectCommand } from '@aws-sdk/client-s3';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/audit-log.js';
import { runBackup } from '../../src/backup/run-backup.js';
import type { Manifest } from '../../src/repository/manifest.js';
import { restore } from '../../src/restore/engine.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { EtcdTarget } from '../../src/sources/etcd/etcd-target.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr } from '../harness/cli.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { consulPairs, consulPut } from '../harness/consul-instance.js';
import { fillEtcd } from '../harness/etcd-fill.js';
import { startEtcd } from '../harness/etcd-instance.js';
import { etcdPairs, etcdState } from '../harness/etcd-state.js';
import { failureOf } from '../harness/failure.js';
import { createTestBucket, minioClient, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { trailEvents } from '../harness/trail.js';

/** The newest event of the audit trail in an fs repository. */
async function lastEvent(path: string): Promise<AuditEvent | undefined> {
  return (await trailEvents(path)).at(-1);
}

describe('restore-from-s3', () => {
  let etcd: Etcd3;
  let bucket: TestBucket;
  let dir: string;
  let configPath: string;
  let cluster: string;
  let consulPrefix: string;
  const binaryKey = (): Buffer => Buffer.concat([Buffer.from(`pwx/${cluster}/bin/`), Buffer.from([0x00, 0xfe, 0xff])]);
  const binaryValue = Buffer.from([0xff, 0x00, 0x7f]);
  const env = (): NodeJS.ProcessEnv => ({ AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'), AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY') });

  beforeAll(async () => {
    etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    bucket = await createTestBucket('restore-s3');
    dir = await mkdtemp(join(tmpdir(), 'kvdr-restore-s3-'));
    cluster = uniqueName('c');
    consulPrefix = `${uniqueName('consul')}/`;
    await etcd.put(`pwx/${cluster}/nodes/n1`).value('{"id":"n1"}');
    await etcd.put(`pwx/${cluster}/volumes/v1`).value('{"id":"v1"}');
    await etcd.put(binaryKey()).value(binaryValue);
    await consulPut(requireEnv('KVDR_CONSUL_ADDR'), `${consulPrefix}a`, 'consul value', undefined, 7);
    await consulPut(requireEnv('KVDR_CONSUL_ADDR'), `${consulPrefix}dir/b`, Buffer.from([1, 2, 3]));
    configPath = join(dir, 'kvdr.yaml');
    await writeFile(
      configPath,
      `sources:\n  - {name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], clusterId: ${cluster}}\n` +
        `  - {name: c, type: consul, endpoints: ["${requireEnv('KVDR_CONSUL_ADDR')}"], prefix: ${consulPrefix}}\n` +
        `repositories:\n  - {name: dr, type: s3, bucket: ${bucket.name}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true}\n` +
        `  - {name: audit, type: fs, path: ${join(dir, 'audit')}}\n` +
        `jobs:\n  - {name: export, source: e, kind: etcd-export, schedule: "0 * * * *", repository: dr}\n` +
        `  - {name: snap, source: e, kind: etcd-snapshot, schedule: "0 * * * *", repository: dr}\n` +
        `  - {name: consul-kv, source: c, kind: consul-export, schedule: "0 * * * *", repository: dr}\n` +
        `  - {name: consul-snap, source: c, kind: consul-snapshot, schedule: "0 * * * *", repository: dr}\n` +
        `audit: {repository: audit}\n`,
    );
    for (const job of ['export', 'snap', 'consul-kv', 'consul-snap']) expect((await kvdr(['--config', configPath, 'backup', job], env())).code).toBe(0);
  });
  afterAll(async () => {
    etcd.close();
    await bucket.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('restores the latest etcd export under --to-prefix, binary keys byte-exact, verified', async () => {
    const scratch = `drill/${uniqueName('drill')}/`;
    const { code, stdout, stderr } = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--job', 'export', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', scratch], env());
    expect(stderr).not.toMatch(/^kvdr: /m);
    expect(code).toBe(0);
    expect(stdout).toContain('restored 3 keys');
    const restored = await etcd.getAll().prefix(scratch).buffers();
    expect(Object.keys(restored).sort()).toEqual([`${scratch}bin/\u0000\ufffd\ufffd`, `${scratch}nodes/n1`, `${scratch}volumes/v1`].sort());
    const exact = await etcd.get(Buffer.concat([Buffer.from(`${scratch}bin/`), Buffer.from([0x00, 0xfe, 0xff])])).buffer();
    expect(exact?.equals(binaryValue)).toBe(true);
  });

  it('narrows with --prefix and restores a Consul export into etcd (and etcd into Consul)', async () => {
    const scratch = `drill/${uniqueName('cross')}/`;
    const fromConsul = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--kind', 'consul-export', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--prefix', `${consulPrefix}dir/`, '--to-prefix', scratch], env());
    expect(fromConsul.code).toBe(0);
    expect(await etcdPairs(etcd, scratch)).toEqual(new Map([[`${scratch}b`, '010203']]));

    const consulScratch = `${uniqueName('from-etcd')}/`;
    const intoConsul = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--job', 'export', '--prefix', `pwx/${cluster}/nodes/`, '--target', `consul:${requireEnv('KVDR_CONSUL_ADDR')}`, '--to-prefix', consulScratch], env());
    expect(intoConsul.code).toBe(0);
    const pairs = await consulPairs(requireEnv('KVDR_CONSUL_ADDR'), consulScratch);
    expect(pairs.get(`${consulScratch}n1`)?.value.toString()).toBe('{"id":"n1"}');
    expect(pairs.size).toBe(1);
  });

  it('restores just the scope out of native etcd and Consul snapshots, across kinds of cluster', async () => {
    const etcdScratch = `drill/${uniqueName('from-snap')}/`;
    const fromEtcd = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--job', 'snap', '--target', `consul:${requireEnv('KVDR_CONSUL_ADDR')}`, '--prefix', `pwx/${cluster}/nodes/`, '--to-prefix', etcdScratch], env());
    expect(fromEtcd.stderr).not.toMatch(/^kvdr: /m);
    expect(fromEtcd.code).toBe(0);
    expect((await consulPairs(requireEnv('KVDR_CONSUL_ADDR'), etcdScratch)).get(`${etcdScratch}n1`)?.value.toString()).toBe('{"id":"n1"}');

    const snapScratch = `drill/${uniqueName('etcd-snap')}/`;
    const whole = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--job', 'snap', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', snapScratch], env());
    expect(whole.code).toBe(0);
    const restored = await etcd.get(Buffer.concat([Buffer.from(`${snapScratch}bin/`), Buffer.from([0x00, 0xfe, 0xff])])).buffer();
    expect(restored?.equals(binaryValue)).toBe(true);
    expect(await etcd.getAll().prefix(snapScratch).count()).toBe(3);

    const consulScratch = `drill/${uniqueName('consul-snap')}/`;
    const fromConsul = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--job', 'consul-snap', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', consulScratch], env());
    expect(fromConsul.stderr).not.toMatch(/^kvdr: /m);
    expect(fromConsul.code).toBe(0);
    expect(await etcdPairs(etcd, consulScratch)).toEqual(new Map([[`${consulScratch}a`, Buffer.from('consul value').toString('hex')], [`${consulScratch}dir/b`, '010203']]));
  });

  it('aborts with exit 3 into the populated original scope, and writes nothing', async () => {
    const before = await etcdState(etcd);
    const { code, stderr } = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--job', 'export', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`], env());
    expect(code).toBe(ExitCode.ScopeNotEmpty);
    expect(stderr).toContain(`3 keys already exist under "pwx/${cluster}/"`);
    expect(await etcdState(etcd)).toEqual(before);
  });

  it('applies the same rules to native snapshots: exit 3 into a populated scope, --force replaces it (Consul into Consul)', async () => {
    const before = await etcdState(etcd);
    const etcdAbort = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--job', 'snap', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`], env());
    expect(etcdAbort.code).toBe(ExitCode.ScopeNotEmpty);
    expect(await etcdState(etcd)).toEqual(before);

    const consul = requireEnv('KVDR_CONSUL_ADDR');
    const restore = (...extra: string[]): ReturnType<typeof kvdr> =>
      kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--job', 'consul-snap', '--target', `consul:${consul}`, ...extra], env());
    const consulBefore = await consulPairs(consul, consulPrefix);
    const consulAbort = await restore();
    expect(consulAbort.code).toBe(ExitCode.ScopeNotEmpty);
    expect(consulAbort.stderr).toContain(`2 keys already exist under "${consulPrefix}"`);
    expect(await consulPairs(consul, consulPrefix)).toEqual(consulBefore);

    await consulPut(consul, `${consulPrefix}a`, 'drifted', undefined, 1);
    await consulPut(consul, `${consulPrefix}new`, 'not in the backup');
    const forced = await restore('--force', '--no-safety-backup');
    expect(forced.stderr).not.toMatch(/^kvdr: /m);
    expect(forced.code).toBe(0);
    expect(await consulPairs(consul, consulPrefix)).toEqual(consulBefore);
  });

  it('exits 4 and leaves the target untouched when the stored artifact is corrupt', async () => {
    const list = await kvdr(['--config', configPath, 'backups', 'list', '--job', 'export', '--json'], env());
    const manifest = (JSON.parse(list.stdout) as Manifest[])[0] as Manifest;
    const client = minioClient();
    await client.send(new PutObjectCommand({ Bucket: bucket.name, Key: manifest.repository.key, Body: Buffer.from('not what was stored') }));
    client.destroy();
    const before = await etcdState(etcd);
    const { code, stderr } = await kvdr(['--config', configPath, 'restore-from-s3', '--backup', manifest.id, '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', `drill/${uniqueName('corrupt')}/`], env());
    expect(code).toBe(ExitCode.Integrity);
    expect(stderr.trim()).toMatch(new RegExp(`backup ${manifest.id}: the artifact's sha256 .* does not match its manifest .*; it is corrupt and nothing was written$`));
    expect(await etcdState(etcd)).toEqual(before);
    // Refused before the first write, and on the record all the same, with the reason.
    expect(await lastEvent(join(dir, 'audit'))).toMatchObject({
      type: 'restore-failed',
      subject: { backup: manifest.id, job: 'export', target: `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, exitCode: ExitCode.Integrity, error: stderr.trim().split('\n').at(-1)?.replace(/^kvdr: /, '') },
    });
  });

  it('records a cluster-id mismatch as a failed restore, and writes nothing', async () => {
    const list = await kvdr(['--config', configPath, 'backups', 'list', '--job', 'export', '--json'], env());
    const manifest = (JSON.parse(list.stdout) as Manifest[])[0] as Manifest;
    const before = await etcdState(etcd);
    const { code, stderr } = await kvdr(['--config', configPath, 'restore-from-s3', '--backup', manifest.id, '--cluster-id', 'other-cluster', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`], env());
    expect(code, stderr).toBe(ExitCode.Usage);
    expect(stderr.trim()).toBe(`kvdr: backup ${manifest.id} is of cluster ${cluster}, not other-cluster; pass --to-prefix pwx/other-cluster/ to restore it there`);
    expect(await lastEvent(join(dir, 'audit'))).toMatchObject({ type: 'restore-failed', subject: { backup: manifest.id, exitCode: ExitCode.Usage, error: stderr.trim().replace(/^kvdr: /, '') } });
    expect(await etcdState(etcd)).toEqual(before);
  });

  /** A config with one etcd export job of `prefix`, stored in the test bucket, audited in the shared trail. */
  const exportJobConfig = async (job: string, prefix: string): Promise<string> => {
    const path = join(dir, `${job}.yaml`);
    await writeFile(
      path,
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], prefix: "${prefix}"}]\n` +
        `repositories:\n  - {name: dr, type: s3, bucket: ${bucket.name}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true}\n` +
        `  - {name: audit, type: fs, path: ${join(dir, 'audit')}}\n` +
        `jobs: [{name: ${job}, source: e, kind: etcd-export, schedule: "0 * * * *", repository: dr}]\n` +
        `audit: {repository: audit}\n`,
    );
    return path;
  };

  it('--force refuses to delete a backup scope that does not end with a slash (it would take the neighbours)', async () => {
    const prefix = uniqueName('no-slash');
    await etcd.put(`${prefix}/a`).value('in scope');
    await etcd.put(`${prefix}0/b`).value('neighbour');
    const config = await exportJobConfig('no-slash', prefix);
    const backup = await kvdr(['--config', config, 'backup', 'no-slash'], env());
    expect(backup.code).toBe(0);
    const before = await etcdState(etcd);
    const restore = (...extra: string[]): ReturnType<typeof kvdr> =>
      kvdr(['--config', config, 'restore-from-s3', '--backup', backup.stdout.trim(), '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--force', '--no-safety-backup', ...extra], env());
    const refused = await restore();
    expect(refused.code).toBe(ExitCode.Usage);
    expect(refused.stderr.trim().split('\n').at(-1)).toBe(
      `kvdr: the scope "${prefix}" does not end with '/', so deleting it would also delete neighbouring keys such as "${prefix}2/…"; nothing was written. Re-run with --prefix ${prefix}/`,
    );
    expect(await etcdState(etcd)).toEqual(before);
    const narrowed = await restore('--prefix', `${prefix}/`);
    expect(narrowed.code).toBe(0);
    expect(await etcd.get(`${prefix}0/b`).string()).toBe('neighbour');
    expect(await etcd.get(`${prefix}/a`).string()).toBe('in scope');
  });

  it('--latest --before <time> picks the newest backup taken before that time, not the newest overall', async () => {
    const prefix = `${uniqueName('before')}/`;
    const config = await exportJobConfig('before-test', prefix);
    const backup = async (value: string): Promise<string> => {
      await etcd.put(`${prefix}k`).value(value);
      const { code, stdout } = await kvdr(['--config', config, 'backup', 'before-test'], env());
      expect(code).toBe(0);
      return stdout.trim();
    };
    const older = await backup('older');
    await new Promise((r) => setTimeout(r, 50));
    const between = new Date();
    await new Promise((r) => setTimeout(r, 50));
    const newer = await backup('newer');
    expect(newer).not.toBe(older);

    const restore = async (scratch: string, ...extra: string[]): Promise<string | null> => {
      const { code, stderr } = await kvdr(['--config', config, 'restore-from-s3', '--latest', '--job', 'before-test', ...extra, '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', scratch], env());
      expect(stderr).not.toMatch(/^kvdr: /m);
      expect(code).toBe(0);
      return etcd.get(`${scratch}k`).string();
    };
    expect(await restore(`${prefix}at-between/`, '--before', between.toISOString())).toBe('older');
    expect((await lastEvent(join(dir, 'audit')))?.subject['backup']).toBe(older);
    expect(await restore(`${prefix}latest/`)).toBe('newer');
    expect((await lastEvent(join(dir, 'audit')))?.subject['backup']).toBe(newer);
  });

  it('explains what cannot be chosen: unknown id or cluster, nothing chosen', async () => {
    const target = ['--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`];
    const unknownId = await kvdr(['--config', configPath, 'restore-from-s3', '--backup', '20200101T000000Z-export-abcdef', ...target], env());
    expect(unknownId.code).toBe(ExitCode.Usage);
    expect(unknownId.stderr).toContain('no backup 20200101T000000Z-export-abcdef in dr, audit');
    const unknownCluster = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--cluster-id', 'nope', ...target], env());
    expect(unknownCluster.code).toBe(ExitCode.Usage);
    expect(unknownCluster.stderr).toContain('no backup matches --cluster-id nope');
    const tooEarly = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--before', '2001-01-01T00:00:00Z', ...target], env());
    expect(tooEarly.code).toBe(ExitCode.Usage);
    const neither = await kvdr(['--config', configPath, 'restore-from-s3', ...target], env());
    expect(neither.code).toBe(ExitCode.Usage);
  });

  it('says how many keys were written when the target dies mid-replay', async () => {
    const source = await startEtcd();
    const dump = join(dir, 'many.ndjson');
    try {
      const client = connectEtcd({ endpoints: [source.endpoint] }, {});
      await fillEtcd(client, 'pwx/many/', 3000, 100);
      client.close();
      const cfg = testConfig({
        sources: [{ name: 's', type: 'etcd', endpoints: [source.endpoint], prefix: 'pwx/many/' }],
        repositories: [{ name: 'dr', type: 'fs', path: join(dir, 'many') }],
        jobs: [{ name: 'j', source: 's', kind: 'etcd-export', compression: 'none', schedule: '0 * * * *', repository: 'dr' }],
      });
      const manifest = await runBackup({ config: cfg, job: 'j', logger: quietLogger });
      const { copyFile } = await import('node:fs/promises');
      await copyFile(join(dir, 'many', manifest.repository.key), dump);
    } finally {
      await source.stop();
    }

    const victim = await startEtcd();
    const target = new EtcdTarget({ endpoints: [victim.endpoint] });
    // The real target, with the process killed after its tenth transaction.
    let batches = 0;
    const dying = Object.assign(Object.create(target) as EtcdTarget, {
      writeBatch: async (records: Parameters<EtcdTarget['writeBatch']>[0]) => {
        if (++batches === 11) victim.kill();
        await target.writeBatch(records);
      },
    });
    try {
      const err = await failureOf(
        restore({
          input: { from: 'file', path: dump },
          target: dying,
          targetSource: { name: 't', type: 'etcd', endpoints: [victim.endpoint], stale: false },
          scope: {},
          force: false,
          dryRun: false,
          safetyBackup: false,
          logger: quietLogger,
          print: () => undefined,
        }),
      );
      // The target is gone, so the rollback cannot run either: the message says how to finish by hand.
      const match = new RegExp(
        'the restore stopped after (\\d+) of 3000 keys were written \\(.*\\); the rollback failed too \\(.*\\), so the scope "pwx/many/" is incomplete — ' +
          `once etcd:${victim.endpoint} is reachable, put it back with: etcdctl --endpoints ${victim.endpoint} del --prefix pwx/many/$`,
      ).exec(err.message);
      // Ten transactions were sent before the kill, up to four in flight: the confirmed count is what landed.
      const written = Number(match?.[1]);
      expect(written % 128).toBe(0);
      expect(written).toBeGreaterThanOrEqual(7 * 128);
      expect(written).toBeLessThanOrEqual(10 * 128);
      expect(err.message).not.toContain('\n');
    } finally {
      await target.close();
      await victim.stop();
    }
  });
});

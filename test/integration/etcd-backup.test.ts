import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/run-backup.js';
import { readCatalog } from '../../src/repository/catalog.js';
import { FsStore } from '../../src/repository/fs-store.js';
import { S3Store } from '../../src/repository/s3-store.js';
import { readAll } from '../../src/util/streams.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { kvdr } from '../harness/cli.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { failureOf } from '../harness/failure.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';

const run = promisify(execFile);

describe('etcd backups into S3 and the filesystem', () => {
  let etcd: EtcdInstance;
  let bucket: TestBucket;
  let dir: string;
  const scope = 'pwx/c1/';

  beforeAll(async () => {
    etcd = await startEtcd();
    bucket = await createTestBucket('etcd-backup', { objectLock: true });
    dir = await mkdtemp(join(tmpdir(), 'kvdr-etcd-backup-'));
    await etcd.ctl('put', `${scope}cluster/info`, '{"id":"c1"}');
    await etcd.ctl('put', `${scope}volumes/v1`, 'one');
    await etcd.ctl('put', 'outside/scope', 'not exported');
  });
  afterAll(async () => {
    await etcd.stop();
    await bucket.remove();
    await rm(dir, { recursive: true, force: true });
  });

  const config = (job: Record<string, unknown>, repository?: Record<string, unknown>) =>
    testConfig({
      sources: [{ name: 'src', type: 'etcd', endpoints: [etcd.endpoint], clusterId: 'c1', region: 'us-east-1' }],
      repositories: [
        repository ??
          bucket.repository({
            name: 'dr',
            objectLock: { mode: 'GOVERNANCE', days: 1 },
            sse: { mode: 'aws:kms', kmsKeyId: requireEnv('KVDR_S3_KMS_KEY_ID') },
          }),
      ],
      jobs: [{ name: 'j', source: 'src', schedule: '0 * * * *', repository: 'dr', ...job }],
    });

  it('stores a gzipped snapshot that etcdctl accepts as is, with a complete manifest', async () => {
    const manifest = await runBackup({ config: config({ kind: 'etcd-snapshot' }), job: 'j', logger: quietLogger });

    const store = new S3Store(bucket.repository());
    const stored = await readAll(await store.get(manifest.repository.key));
    await store.close();
    expect(createHash('sha256').update(stored).digest('hex')).toBe(manifest.sha256);
    expect(manifest.bytes.stored).toBe(stored.length);
    const db = gunzipSync(stored);
    expect(manifest.bytes.raw).toBe(db.length);
    expect(db.length % 512).toBe(32);
    expect(manifest).toMatchObject({
      kind: 'etcd-snapshot',
      status: 'success',
      compression: 'gzip',
      scope: { prefix: scope },
      source: { type: 'etcd', endpoints: [etcd.endpoint], clusterId: 'c1', region: 'us-east-1' },
      repository: { name: 'dr', type: 's3', bucket: bucket.name },
      objectLock: { mode: 'GOVERNANCE' },
      encryption: { clientSide: false, sse: { mode: 'aws:kms' } },
    });
    expect(manifest.encryption.sse?.kmsKeyId).toContain(requireEnv('KVDR_S3_KMS_KEY_ID'));
    expect(Date.parse(manifest.objectLock?.retainUntil ?? '')).toBeGreaterThan(Date.now() + 86_400_000 - 60_000);
    expect(manifest.repository.key).toMatch(/^data\/j\/\d{8}T\d{6}Z-j-[0-9a-f]{6}\.db\.gz$/);
    expect(manifest.repository.versionId).toBeTruthy();
    expect(manifest.repository.etag).toBeTruthy();
    expect(manifest.revision).toBeGreaterThanOrEqual(4);
    expect(manifest.details['dbSha256']).toBe(createHash('sha256').update(db.subarray(0, db.length - 32)).digest('hex'));

    const file = join(dir, 'snap.db');
    await writeFile(file, db);
    const status = JSON.parse((await run('etcdctl', ['snapshot', 'status', file, '-w', 'json'], { env: { ...process.env, ETCDCTL_API: '3' } })).stdout) as { revision: number };
    expect(status.revision).toBeGreaterThanOrEqual(manifest.revision ?? 0);

    // The real proof: etcdctl restores it (checking the trailer) and a member started on it has the keys.
    const member = await startEtcd({ restoreFrom: file });
    try {
      expect((await member.ctl('get', `${scope}volumes/v1`, '--print-value-only')).trim()).toBe('one');
    } finally {
      await member.stop();
    }
  });

  it('stores an uncompressed snapshot byte for byte as etcdctl snapshot save writes it', async () => {
    const repo = join(dir, 'fs-repo');
    const manifest = await runBackup({
      config: config({ kind: 'etcd-snapshot', compression: 'none' }, { name: 'dr', type: 'fs', path: repo }),
      job: 'j',
      logger: quietLogger,
    });
    const ours = await readFile(join(repo, manifest.repository.key));
    const theirs = join(dir, 'etcdctl.db');
    await run('etcdctl', ['--endpoints', etcd.endpoint, 'snapshot', 'save', theirs], { env: { ...process.env, ETCDCTL_API: '3' } });
    // Nothing was written in between, so the two snapshots of the same database are identical.
    expect(ours.equals(await readFile(theirs))).toBe(true);
    expect(manifest.compression).toBe('none');
    expect(manifest.repository.type).toBe('fs');
  });

  it('exports the scope at one revision, binary-safe, with header, records and trailer', async () => {
    const binaryKey = Buffer.concat([Buffer.from(`${scope}bin/`), Buffer.from([0x00, 0xff, 0xfe])]);
    const binaryValue = Buffer.from([0x00, 0x01, 0xff, 0x80]);
    const client = connectEtcd({ endpoints: [etcd.endpoint] }, {});
    await client.put(binaryKey).value(binaryValue);
    const lease = client.lease(600, { autoKeepAlive: false });
    await lease.put(`${scope}leased`).value('ttl');

    const manifest = await runBackup({ config: config({ kind: 'etcd-export' }), job: 'j', logger: quietLogger });
    const live = await client.getAll().prefix(scope).count();
    await lease.revoke();
    client.close();
    const store = new S3Store(bucket.repository());
    const lines = gunzipSync(await readAll(await store.get(manifest.repository.key))).toString().trimEnd().split('\n');
    await store.close();
    const header = JSON.parse(lines[0] ?? '') as { format: string; revision: number; prefix: string };
    const trailer = JSON.parse(lines.at(-1) ?? '') as { trailer: { count: number; digest: string } };
    const records = lines.slice(1, -1).map((l) => JSON.parse(l) as { key: string; value: string; lease: string });

    expect(header).toMatchObject({ format: 'kvdr-export', version: 2, revision: manifest.revision, prefix: Buffer.from(scope).toString('base64') });
    const keys = records.map((r) => Buffer.from(r.key, 'base64'));
    expect(keys.every((k) => k.subarray(0, scope.length).toString() === scope)).toBe(true);
    expect(keys.some((k) => k.equals(binaryKey))).toBe(true);
    const bin = records.find((r) => Buffer.from(r.key, 'base64').equals(binaryKey));
    expect(Buffer.from(bin?.value ?? '', 'base64').equals(binaryValue)).toBe(true);
    expect(records.find((r) => Buffer.from(r.key, 'base64').toString() === `${scope}leased`)?.lease).not.toBe('0');
    expect(trailer.trailer.count).toBe(records.length);
    expect(manifest.records).toBe(records.length);
    expect(manifest.details['recordDigest']).toBe(trailer.trailer.digest);
    expect(records.length).toBe(live);
  });

  it('lists both kinds in the catalog, oldest first', async () => {
    const store = new S3Store(bucket.repository());
    const catalog = await readCatalog(store, { job: 'j' });
    await store.close();
    expect(catalog.map((m) => m.kind)).toEqual(['etcd-snapshot', 'etcd-export']);
  });

  it('takes snapshots and exports from an etcd with authentication enabled', async () => {
    const secured = await startEtcd({ rootPassword: 'r00t-pw' });
    try {
      await secured.ctl('put', `${scope}a`, '1');
      const repo = join(dir, uniqueName('auth'));
      const cfg = (password: string, username = 'root') =>
        testConfig({
          sources: [{ name: 'src', type: 'etcd', endpoints: [secured.endpoint], clusterId: 'c1', auth: { username, password } }],
          repositories: [{ name: 'dr', type: 'fs', path: repo }],
          jobs: [
            { name: 'snap', source: 'src', kind: 'etcd-snapshot', schedule: '0 * * * *', repository: 'dr' },
            { name: 'export', source: 'src', kind: 'etcd-export', schedule: '0 * * * *', repository: 'dr' },
          ],
        });
      const snap = await runBackup({ config: cfg('r00t-pw'), job: 'snap', logger: quietLogger });
      expect(snap.bytes.raw % 512).toBe(32);
      const exported = await runBackup({ config: cfg('r00t-pw'), job: 'export', logger: quietLogger });
      expect(exported.records).toBe(1);

      const wrong = await failureOf(runBackup({ config: cfg('wrong'), job: 'snap', logger: quietLogger }));
      expect(wrong.message).toMatch(/credentials were rejected/);
      expect(wrong.message).not.toContain('\n');
      expect(await readCatalog(new FsStore({ path: repo }))).toHaveLength(2);

      // A user who may read the scope but is not root: etcd refuses the snapshot call itself (its gRPC
      // status, after Status succeeded), and that refusal is the one line, with nothing stored.
      await secured.ctl('user', 'add', 'reader:read-pw');
      await secured.ctl('role', 'add', 'scope-reader');
      await secured.ctl('role', 'grant-permission', 'scope-reader', 'read', scope, '--prefix');
      await secured.ctl('user', 'grant-role', 'reader', 'scope-reader');
      const denied = await failureOf(runBackup({ config: cfg('read-pw', 'reader'), job: 'snap', logger: quietLogger }));
      expect(denied.message).toMatch(/cannot take a snapshot: permission denied; .*root role for snapshots/);
      expect(denied.message).not.toContain('\n');
      expect(await readCatalog(new FsStore({ path: repo }))).toHaveLength(2);
    } finally {
      await secured.stop();
    }
  });

  it('reaches an etcd that requires TLS client certificates', async () => {
    const secured = await startEtcd({ tls: true });
    try {
      await secured.ctl('put', `${scope}tls`, 'yes');
      const tls = secured.tls;
      if (!tls) throw new Error('no TLS files');
      const cfg = testConfig({
        sources: [{ name: 'src', type: 'etcd', endpoints: [secured.endpoint], clusterId: 'c1', tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey } }],
        repositories: [{ name: 'dr', type: 'fs', path: join(dir, uniqueName('tls')) }],
        jobs: [
          { name: 'export', source: 'src', kind: 'etcd-export', schedule: '0 * * * *', repository: 'dr' },
          { name: 'snap', source: 'src', kind: 'etcd-snapshot', schedule: '0 * * * *', repository: 'dr' },
        ],
      });
      expect((await runBackup({ config: cfg, job: 'export', logger: quietLogger })).records).toBe(1);
      expect((await runBackup({ config: cfg, job: 'snap', logger: quietLogger })).bytes.raw % 512).toBe(32);

      // The CLI, as an operator runs it against an endpoint given by address: exit 0 and not one warning
      // (grpc-js names the IP as the TLS server name, which Node would flag on every command).
      const file = join(dir, `${uniqueName('tls')}.json`);
      await writeFile(file, JSON.stringify(cfg));
      for (const job of ['snap', 'export']) {
        const run = await kvdr(['--config', file, '--log-level', 'warn', 'backup', job]);
        expect(run.code, run.stderr).toBe(0);
        expect(run.stderr).not.toMatch(/Warning/);
      }
    } finally {
      await secured.stop();
    }
  });

  it('uses several endpoints, skipping one that is down', async () => {
    const cfg = testConfig({
      sources: [{ name: 'src', type: 'etcd', endpoints: ['http://127.0.0.1:1', etcd.endpoint], clusterId: 'c1' }],
      repositories: [{ name: 'dr', type: 'fs', path: join(dir, uniqueName('multi')) }],
      jobs: [{ name: 'export', source: 'src', kind: 'etcd-export', schedule: '0 * * * *', repository: 'dr' }],
    });
    for (let i = 0; i < 3; i++) expect((await runBackup({ config: cfg, job: 'export', logger: quietLogger })).records).toBeGreaterThan(0);
  });
});

import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import type { Etcd3 } from 'etcd3';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/run-backup.js';
import { storeArtifact } from '../../src/backup/store-artifact.js';
import { verifySnapshotTrailer } from '../../src/formats/etcd-snapshot.js';
import { readCatalog } from '../../src/repository/catalog.js';
import type { ObjectStore } from '../../src/repository/object-store.js';
import { S3Store } from '../../src/repository/s3-store.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { prefixEnd } from '../../src/sources/etcd/range-reader.js';
import { IntegrityError, KvdrError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr } from '../harness/cli.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { fillEtcd } from '../harness/etcd-fill.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import { failureOf } from '../harness/failure.js';
import { createTestBucket, minioClient, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { serviceControl } from '../harness/stack.js';

const run = promisify(execFile);

async function keysIn(store: ObjectStore, prefix = ''): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(prefix)) keys.push(info.key);
  return keys;
}

/** A progress callback that kills the source once, when more than `bytes` have been read. */
function killPast(bytes: number, kill: () => void): { onProgress: (read: number) => void; done: () => boolean } {
  let killed = false;
  return {
    onProgress: (read) => {
      if (!killed && read > bytes) {
        killed = true;
        kill();
      }
    },
    done: () => killed,
  };
}

async function openMultipartUploads(bucket: string): Promise<number> {
  const client = minioClient();
  try {
    return (await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads?.length ?? 0;
  } finally {
    client.destroy();
  }
}

/** Writes `count` keys of `valueBytes` random bytes under a prefix, 128 to a transaction (etcd's --max-txn-ops). */
async function putInBatches(etcd: Etcd3, prefix: string, count: number, valueBytes: number): Promise<void> {
  for (let i = 0; i < count; i += 128) {
    const puts = Array.from({ length: Math.min(128, count - i) }, (_, j) => ({
      request_put: { key: Buffer.from(`${prefix}${String(i + j).padStart(8, '0')}`), value: randomBytes(valueBytes) },
    }));
    await etcd.kv.txn({ compare: [], success: puts, failure: [] });
  }
}

async function exited(pid: number): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
  throw new Error(`process ${pid} still there 60s after SIGKILL`);
}

describe('etcd backups: faults and bad input', () => {
  let dir: string;
  let bucket: TestBucket;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-faults-'));
    bucket = await createTestBucket('etcd-faults');
  });
  afterAll(async () => {
    await bucket.remove();
    await rm(dir, { recursive: true, force: true });
  });

  const configFor = (endpoint: string, repository: Record<string, unknown>, kind = 'etcd-snapshot', compression = 'gzip') =>
    testConfig({
      sources: [{ name: 'src', type: 'etcd', endpoints: [endpoint] }],
      repositories: [{ ...repository, name: 'dr' }],
      jobs: [{ name: 'j', source: 'src', kind, compression, schedule: '0 * * * *', repository: 'dr' }],
    });

  describe('with a large database', () => {
    let etcd: EtcdInstance;
    beforeAll(async () => {
      etcd = await startEtcd();
      const client = connectEtcd({ endpoints: [etcd.endpoint] }, {});
      await fillEtcd(client, 'big/', 120, 1024 * 1024); // ~120 MiB: a snapshot that takes a while to stream
      client.close();
    }, 180_000);
    afterAll(async () => {
      await etcd.stop();
    });

    it('fails in one line, lists nothing and leaves no upload behind when etcd is killed mid-snapshot', async () => {
      const repository = { ...bucket.repository({ prefix: 'killed/' }), queueSize: 1 };
      const config = configFor(etcd.endpoint, repository, 'etcd-snapshot', 'none');
      const kill = killPast(8 * 1024 * 1024, () => etcd.kill());
      const err = await failureOf(runBackup({ config, job: 'j', logger: quietLogger, onProgress: kill.onProgress }));
      expect(kill.done()).toBe(true);
      expect(err.message).not.toContain('\n');
      expect(err.message).toMatch(/^etcd http:\/\/127\.0\.0\.1:\d+: cannot take a snapshot: /);
      const store = new S3Store(repository);
      expect(await keysIn(store)).toEqual([]);
      await store.close();
      expect(await openMultipartUploads(bucket.name)).toBe(0);
    });
  });

  it('fails in one line, lists nothing and leaves no upload behind when etcd is killed mid-export; the next run succeeds', async () => {
    // The stack's own etcd: it can be killed outright and started again on the same port with the same data.
    const endpoint = requireEnv('KVDR_ETCD_ENDPOINT');
    const etcdPid = Number(await readFile(join(requireEnv('KVDR_STACK_DIR'), 'etcd.pid'), 'utf8'));
    const prefix = `${uniqueName('export-killed')}/`;
    const keys = 20_000;
    const client = connectEtcd({ endpoints: [endpoint] }, {});
    await putInBatches(client, prefix, keys, 1024); // ~30 MiB of export: several pages, several 5 MiB parts
    client.close();
    const ownBucket = await createTestBucket('export-killed'); // so that any multipart upload found is this one's
    const repository = { ...ownBucket.repository(), queueSize: 1 };
    const config = testConfig({
      sources: [{ name: 'src', type: 'etcd', endpoints: [endpoint], prefix }],
      repositories: [{ ...repository, name: 'dr' }],
      jobs: [{ name: 'j', source: 'src', kind: 'etcd-export', compression: 'none', schedule: '0 * * * *', repository: 'dr' }],
    });
    try {
      const kill = killPast(8 * 1024 * 1024, () => process.kill(etcdPid, 'SIGKILL'));
      try {
        const err = await failureOf(runBackup({ config, job: 'j', logger: quietLogger, onProgress: kill.onProgress }));
        expect(kill.done()).toBe(true);
        expect(err).toBeInstanceOf(KvdrError);
        expect((err as KvdrError).exitCode).toBe(ExitCode.Failure);
        expect(err.message).not.toContain('\n');
        expect(err.message).toMatch(/^etcd http:\/\/127\.0\.0\.1:\d+: cannot export kvdr-t-export-killed-\S+: cannot reach etcd \(/);
        const store = new S3Store(repository);
        expect(await keysIn(store)).toEqual([]);
        await store.close();
        expect(await openMultipartUploads(ownBucket.name)).toBe(0);
      } finally {
        await exited(etcdPid); // until then services.sh would take the unreaped process for a running etcd
        await serviceControl('start', 'etcd');
      }
      // The next run, against the restarted etcd, succeeds and is the only backup listed.
      const manifest = await runBackup({ config, job: 'j', logger: quietLogger });
      expect(manifest.records).toBe(keys);
      const again = new S3Store(repository);
      expect((await readCatalog(again)).map((m) => m.id)).toEqual([manifest.id]);
      await again.close();
    } finally {
      // Give the shared etcd its space back.
      const cleanup = connectEtcd({ endpoints: [endpoint] }, {});
      const deleted = await cleanup.kv.deleteRange({ key: Buffer.from(prefix), range_end: prefixEnd(Buffer.from(prefix)) });
      await cleanup.kv.compact({ revision: deleted.header.revision, physical: true });
      await cleanup.maintenance.defragment();
      cleanup.close();
      await ownBucket.remove();
    }
  }, 300_000);

  it('fails, lists nothing and does not block the next run when MinIO stops mid-upload', async () => {
    const etcd = await startEtcd();
    const client = connectEtcd({ endpoints: [etcd.endpoint] }, {});
    await fillEtcd(client, 'big/', 40, 1024 * 1024);
    client.close();
    const repository = { ...bucket.repository({ prefix: 's3-down/' }), queueSize: 1 };
    const config = configFor(etcd.endpoint, repository, 'etcd-snapshot', 'none');
    try {
      let stopped: Promise<void> | undefined;
      const err = await failureOf(
        runBackup({
          config,
          job: 'j',
          logger: quietLogger,
          onProgress: (bytes) => {
            if (!stopped && bytes > 6 * 1024 * 1024) stopped = serviceControl('stop', 'minio');
          },
        }),
      );
      await stopped;
      expect(err.message).not.toContain('\n');
      expect(err.message).toMatch(/s3:\/\/.*cannot .*(reach the S3 endpoint|upload)/);
    } finally {
      await serviceControl('start', 'minio');
      await etcd.stop().catch(() => undefined);
    }
    const store = new S3Store(repository);
    expect((await keysIn(store, 'manifests/')).length).toBe(0);
    await store.close();
    // The next run works: a fresh id, nothing left over in the way.
    const etcd2 = await startEtcd();
    try {
      const manifest = await runBackup({ config: configFor(etcd2.endpoint, repository), job: 'j', logger: quietLogger });
      const again = new S3Store(repository);
      expect((await readCatalog(again)).map((m) => m.id)).toEqual([manifest.id]);
      await again.close();
    } finally {
      await etcd2.stop();
    }
  });

  it('reports a full disk on a filesystem repository in one line and leaves no temp file', async () => {
    const etcd = await startEtcd();
    const client = connectEtcd({ endpoints: [etcd.endpoint] }, {});
    await fillEtcd(client, 'k/', 4, 512 * 1024); // a 2 MiB snapshot for a 512 KiB disk
    client.close();
    const mountPoint = join(dir, 'tiny');
    await mkdir(mountPoint);
    await run('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mountPoint]);
    try {
      const err = await failureOf(runBackup({ config: configFor(etcd.endpoint, { type: 'fs', path: mountPoint }, 'etcd-snapshot', 'none'), job: 'j', logger: quietLogger }));
      expect(err.message).toMatch(/the disk is full; free space or point the repository elsewhere$/);
      expect(err.message).not.toContain('\n');
      expect(await readdir(mountPoint, { recursive: true })).toEqual(expect.not.arrayContaining([expect.stringContaining('.kvdr-tmp-')]));
      expect(await readdir(join(mountPoint, 'manifests')).catch(() => [])).toEqual([]);
    } finally {
      await run('umount', [mountPoint]);
      await etcd.stop();
    }
  });

  it('refuses a snapshot whose sha256 trailer does not match, storing nothing', async () => {
    const etcd = await startEtcd();
    const file = join(dir, 'real.db');
    try {
      await etcd.ctl('put', 'k', 'v');
      await run('etcdctl', ['--endpoints', etcd.endpoint, 'snapshot', 'save', file], { env: { ...process.env, ETCDCTL_API: '3' } });
    } finally {
      await etcd.stop();
    }
    const real = await readFile(file);
    const store = new S3Store(bucket.repository({ prefix: 'corrupt/' }));
    try {
      // The untouched snapshot passes through unchanged.
      const ok = await storeArtifact(store, 'ok.db', Readable.from([real]).pipe(verifySnapshotTrailer()), { compression: 'none' });
      expect(ok.storedBytes).toBe(real.length);

      const flipped = Buffer.from(real);
      flipped[8192] = (flipped[8192] as number) ^ 0xff;
      const corrupt = await failureOf(storeArtifact(store, 'bad.db', Readable.from([flipped]).pipe(verifySnapshotTrailer()), { compression: 'gzip' }));
      expect(corrupt).toBeInstanceOf(IntegrityError);
      expect(corrupt.message).toMatch(/sha256 trailer mismatch/);

      // The trailer itself damaged: the data is intact but no longer matches what etcd said it sent.
      const badTrailer = Buffer.from(real);
      const inTrailer = real.length - 5; // one of the last 32 bytes
      badTrailer[inTrailer] = (badTrailer[inTrailer] as number) ^ 0xff;
      const trailer = await failureOf(storeArtifact(store, 'bad-trailer.db', Readable.from([badTrailer]).pipe(verifySnapshotTrailer()), { compression: 'none' }));
      expect(trailer).toBeInstanceOf(IntegrityError);
      expect(trailer.message).toMatch(/sha256 trailer mismatch/);

      const truncated = await failureOf(
        storeArtifact(store, 'short.db', Readable.from([real.subarray(0, 4096 * 3)]).pipe(verifySnapshotTrailer()), { compression: 'none' }),
      );
      expect(truncated.message).toMatch(/not a bbolt database plus a 32-byte sha256 trailer/);
      expect(await keysIn(store)).toEqual(['ok.db']);
    } finally {
      await store.close();
    }
  });

  describe('from the command line', () => {
    const s3Env = (): NodeJS.ProcessEnv => ({
      AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'),
      AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY'),
    });
    async function configFile(endpoint: string, bucketName: string): Promise<string> {
      const path = join(dir, `${uniqueName('cfg')}.yaml`);
      await writeFile(
        path,
        `sources: [{name: src, type: etcd, endpoints: ["${endpoint}"], clusterId: c1}]\n` +
          `repositories: [{name: dr, type: s3, bucket: ${bucketName}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true}]\n` +
          `jobs: [{name: snap, source: src, kind: etcd-snapshot, schedule: "0 * * * *", repository: dr},\n` +
          `       {name: export, source: src, kind: etcd-export, schedule: "0 * * * *", repository: dr}]\n`,
      );
      return path;
    }

    it('prints the backup id of a successful run and lists it', async () => {
      const path = await configFile(requireEnv('KVDR_ETCD_ENDPOINT'), bucket.name);
      const { code, stdout, stderr } = await kvdr(['--config', path, 'backup', 'export'], s3Env());
      expect(stderr).toContain('backup finished');
      expect(code).toBe(0);
      const id = stdout.trim();
      expect(id).toMatch(/^\d{8}T\d{6}Z-export-[0-9a-f]{6}$/);
      const listed = await kvdr(['--config', path, 'backups', 'list', '--json'], s3Env());
      expect((JSON.parse(listed.stdout) as { id: string }[]).map((m) => m.id)).toContain(id);
    });

    it('exits 1 in one line when etcd is unreachable', async () => {
      const path = await configFile('http://127.0.0.1:1', bucket.name);
      const { code, stderr } = await kvdr(['--config', path, '--log-level', 'silent', 'backup', 'snap'], s3Env());
      expect(code).toBe(ExitCode.Failure);
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toMatch(/cannot reach etcd/);
    });

    it('exits 1 in one line when the bucket is missing, and lists nothing', async () => {
      const path = await configFile(requireEnv('KVDR_ETCD_ENDPOINT'), `${bucket.name}-nope`);
      const { code, stderr } = await kvdr(['--config', path, '--log-level', 'silent', 'backup', 'snap'], s3Env());
      expect(code).toBe(ExitCode.Failure);
      expect(stderr.trim().split('\n')).toHaveLength(1);
      expect(stderr).toContain('the bucket does not exist');
    });

    it('exits 2 naming the known jobs when the job does not exist', async () => {
      const path = await configFile(requireEnv('KVDR_ETCD_ENDPOINT'), bucket.name);
      const { code, stderr } = await kvdr(['--config', path, 'backup', 'nightly'], s3Env());
      expect(code).toBe(ExitCode.Usage);
      expect(stderr.trim()).toBe('kvdr: no job named "nightly" in the config (jobs: snap, export)');
    });
  });
});

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEtcdSnapshot } from '../../src/formats/etcd-snapshot-reader.js';
import type { KvRecord } from '../../src/formats/record.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { IntegrityError } from '../../src/util/errors.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import { requireEnv } from '../harness/namespace.js';

const run = promisify(execFile);

async function collect(records: AsyncIterable<KvRecord>): Promise<Map<string, { value: string; lease: string }>> {
  const out = new Map<string, { value: string; lease: string }>();
  for await (const r of records) out.set(r.key.toString('hex'), { value: r.value.toString('hex'), lease: r.lease ?? '0' });
  return out;
}

describe.each([
  ['3.4 (Debian)', undefined],
  ['3.5 (Go module)', 'KVDR_ETCD35_BIN'],
])('etcd snapshot reader (bbolt), etcd %s', (_version, binaryVariable) => {
  let etcd: EtcdInstance;
  let dir: string;
  let file: string;
  let expected: Map<string, { value: string; lease: string }>;
  let revision: number;

  beforeAll(async () => {
    etcd = await startEtcd(binaryVariable ? { binary: requireEnv(binaryVariable) } : {});
    dir = await mkdtemp(join(tmpdir(), 'kvdr-bbolt-'));
    const client = connectEtcd({ endpoints: [etcd.endpoint] }, {});
    // Enough keys for branch pages, values over several pages, overwrites, deletes, leases, binary keys.
    for (let i = 0; i < 3000; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => client.put(`pwx/c1/k/${String(i + j).padStart(5, '0')}`).value(`v${i + j}`)));
    }
    for (let i = 0; i < 3000; i += 3) await client.put(`pwx/c1/k/${String(i).padStart(5, '0')}`).value(`overwritten ${i}`);
    await client.delete().prefix('pwx/c1/k/001');
    await client.put('pwx/c1/big').value(randomBytes(50_000));
    await client.put(Buffer.from([0x70, 0x77, 0x78, 0x2f, 0x63, 0x31, 0x2f, 0x00, 0xff])).value(Buffer.from([1, 2, 3]));
    const lease = client.lease(3600, { autoKeepAlive: false });
    await lease.put('pwx/c1/leased').value('with a lease');
    await client.put('other/x').value('outside the prefix');
    await client.put('pwx/c1/deleted-then-back').value('1');
    await client.delete().key('pwx/c1/deleted-then-back');
    await client.put('pwx/c1/deleted-then-back').value('2');
    const status = await client.maintenance.status();
    await etcd.ctl('compact', String(Number(status.header.revision) - 50));
    const all = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
    expected = new Map(all.kvs.map((kv) => [kv.key.toString('hex'), { value: kv.value.toString('hex'), lease: String(kv.lease) }]));
    const binary = await client.get(Buffer.from([0x70, 0x77, 0x78, 0x2f, 0x63, 0x31, 0x2f, 0x00, 0xff])).buffer();
    expect(binary?.equals(Buffer.from([1, 2, 3]))).toBe(true);
    revision = Number((await client.maintenance.status()).header.revision);
    client.close();
    file = join(dir, 'snap.db');
    await run('etcdctl', ['--endpoints', etcd.endpoint, 'snapshot', 'save', file], { env: { ...process.env, ETCDCTL_API: '3' } });
  }, 180_000);
  afterAll(async () => {
    await etcd.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('yields exactly the live keys a range read returns, with values, and the revision', async () => {
    const snapshot = await openEtcdSnapshot(file, 'snap.db');
    try {
      const got = await collect(snapshot.records());
      expect(new Set(got.keys())).toEqual(new Set(expected.keys()));
      for (const [key, want] of expected) expect(got.get(key), Buffer.from(key, 'hex').toString()).toEqual(want);
      expect(got.get(Buffer.from('pwx/c1/deleted-then-back').toString('hex'))?.value).toBe(Buffer.from('2').toString('hex'));
      expect(got.has(Buffer.from('pwx/c1/k/00100').toString('hex'))).toBe(false);
      expect(got.get(Buffer.from('pwx/c1/leased').toString('hex'))?.lease).not.toBe('0');
      expect(snapshot.revision()).toBe(revision);
    } finally {
      await snapshot.close();
    }
  });

  it('filters by prefix', async () => {
    const snapshot = await openEtcdSnapshot(file, 'snap.db');
    try {
      const got = await collect(snapshot.records(Buffer.from('other/')));
      expect([...got.keys()].map((k) => Buffer.from(k, 'hex').toString())).toEqual(['other/x']);
    } finally {
      await snapshot.close();
    }
  });

  it('refuses a damaged, big-endian or unknown-version file', async () => {
    const good = await readFile(file);
    const withTrailer = (db: Buffer): Buffer => Buffer.concat([db, createHash('sha256').update(db).digest()]);
    const db = good.subarray(0, good.length - 32);

    const flipped = Buffer.from(good);
    flipped[5000] = (flipped[5000] as number) ^ 1;
    const swapped = Buffer.from(db);
    for (const page of [0, swapped.readUInt32LE(16 + 8)]) swapped.writeUInt32BE(0xed0cdaed, page + 16);
    const version = Buffer.from(db);
    version.writeUInt32LE(3, 16 + 4);
    const cases: [Buffer, RegExp][] = [
      [flipped, /sha256 trailer mismatch/],
      [good.subarray(0, 4096 * 2 + 32), /trailer|truncated|outside|damaged/],
      [withTrailer(swapped), /big-endian bbolt file/],
      [withTrailer(version), /bbolt format version 3 is unknown/],
    ];
    for (const [bytes, message] of cases) {
      const path = join(dir, `bad-${Math.random()}.db`);
      await writeFile(path, bytes);
      const err = await (async () => {
        const snapshot = await openEtcdSnapshot(path, 'bad.db');
        try {
          await collect(snapshot.records());
        } finally {
          await snapshot.close();
        }
      })().catch((e: unknown) => e);
      expect(err, String(message)).toBeInstanceOf(IntegrityError);
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe('etcd 3.5 snapshots through the backup path', () => {
  it('stores a 3.5 snapshot that the reader and etcdctl accept, with the revision etcd reported', async () => {
    const etcd = await startEtcd({ binary: requireEnv('KVDR_ETCD35_BIN') });
    const dir = await mkdtemp(join(tmpdir(), 'kvdr-etcd35-'));
    try {
      await etcd.ctl('put', 'pwx/c1/a', '1');
      const { runBackup } = await import('../../src/backup/run-backup.js');
      const { testConfig, quietLogger } = await import('../harness/config.js');
      const manifest = await runBackup({
        config: testConfig({
          sources: [{ name: 'e', type: 'etcd', endpoints: [etcd.endpoint] }],
          repositories: [{ name: 'dr', type: 'fs', path: dir }],
          jobs: [{ name: 'j', source: 'e', kind: 'etcd-snapshot', compression: 'none', schedule: '0 * * * *', repository: 'dr' }],
        }),
        job: 'j',
        logger: quietLogger,
      });
      const snapshot = await openEtcdSnapshot(join(dir, manifest.repository.key), 'etcd35.db');
      try {
        const keys = [...(await collect(snapshot.records())).keys()].map((k) => Buffer.from(k, 'hex').toString());
        expect(keys).toEqual(['pwx/c1/a']);
        expect(manifest.revision).toBeGreaterThanOrEqual(snapshot.revision());
      } finally {
        await snapshot.close();
      }
      await run('etcdctl', ['snapshot', 'status', join(dir, manifest.repository.key)], { env: { ...process.env, ETCDCTL_API: '3' } });
    } finally {
      await etcd.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

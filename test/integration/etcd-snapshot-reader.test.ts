import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topLevelBucket } from '../../src/formats/bbolt/bucket-walker.js';
import { BRANCH, fnv1a64, PageFile } from '../../src/formats/bbolt/page-file.js';
import { openEtcdSnapshot } from '../../src/formats/etcd-snapshot-reader.js';
import type { KvRecord } from '../../src/formats/record.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { IntegrityError } from '../../src/util/errors.js';
import { kvdr } from '../harness/cli.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import { requireEnv } from '../harness/namespace.js';

const run = promisify(execFile);

async function collect(records: AsyncIterable<KvRecord>): Promise<Map<string, { value: string; lease: string }>> {
  const out = new Map<string, { value: string; lease: string }>();
  for await (const r of records) out.set(r.key.toString('hex'), { value: r.value.toString('hex'), lease: r.lease ?? '0' });
  return out;
}

/** The page the snapshot's "key" bucket starts at, as the reader finds it. */
async function keyBucketRoot(path: string): Promise<bigint> {
  const handle = await open(path, 'r');
  try {
    const pages = await PageFile.open(handle, (await handle.stat()).size - 32, 'snap.db');
    const root = await topLevelBucket(pages, 'key', 'snap.db');
    if (!root || !('pgid' in root)) throw new Error('the key bucket is inlined; the fixture needs more keys');
    return root.pgid;
  } finally {
    await handle.close();
  }
}

/** Rewrites a field of meta page 0 (the newer meta) and fixes its checksum, as a faulty writer would. */
function setMeta(db: Buffer, offset: number, value: bigint): void {
  db.writeBigUInt64LE(value, 16 + offset);
  db.writeBigUInt64LE(fnv1a64(db.subarray(16, 16 + 56)), 16 + 56);
}

/** Reads every record of a snapshot; resolves with the error it fails with (undefined if none). */
async function read(path: string): Promise<unknown> {
  try {
    const snapshot = await openEtcdSnapshot(path, 'damaged.db');
    try {
      await collect(snapshot.records());
    } finally {
      await snapshot.close();
    }
    return undefined;
  } catch (err) {
    return err;
  }
}

function withinSeconds<T>(seconds: number, work: Promise<T>): Promise<T> {
  return Promise.race([work, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still reading after ${seconds} s: the reader hangs`)), seconds * 1000))]);
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

  it('refuses a structurally damaged database whose trailer checks out: one line, exit 4, no hang', async () => {
    const db = (await readFile(file)).subarray(0, -32);
    const pageSize = db.readUInt32LE(16 + 8);
    const at = (pgid: bigint): number => Number(pgid) * pageSize;
    const child = (page: Buffer, pgid: bigint, i: number): bigint => page.readBigUInt64LE(at(pgid) + 16 + i * 16 + 8);
    // The key bucket's root is a branch page over leaves (3000 keys do not fit one page); find a leaf under it.
    const keyRoot = await keyBucketRoot(file);
    expect(db.readUInt16LE(at(keyRoot) + 8)).toBe(BRANCH);
    let leaf = child(db, keyRoot, 0);
    while (db.readUInt16LE(at(leaf) + 8) === BRANCH) leaf = child(db, leaf, 0);
    const metaPgid = db.readBigUInt64LE(16 + 40);

    const cases: [string, (d: Buffer) => void, RegExp][] = [
      ['meta root outside the file', (d) => setMeta(d, 16, metaPgid + 100n), /reference to page \d+ outside the database/],
      ['meta page count beyond the file', (d) => setMeta(d, 40, metaPgid + 100n), /the meta page counts \d+ pages but only \d+ are in the file/],
      ['branch pointing to itself', (d) => d.writeBigUInt64LE(keyRoot, at(keyRoot) + 16 + 8), /B\+tree runs deeper than 64 levels/],
      ['branch pointing twice to one child', (d) => d.writeBigUInt64LE(child(d, keyRoot, 0), at(keyRoot) + 16 + 16 + 8), /out of order|referenced twice/],
      ['branch claiming more elements than fit', (d) => d.writeUInt16LE(0xffff, at(keyRoot) + 10), /claims 65535 elements/],
      ['leaf ksize beyond the page', (d) => d.writeUInt32LE(0x7fff_ffff, at(leaf) + 16 + 8), /element 0 of page \d+ reaches byte \d+ of a \d+-byte page/],
      ['leaf of an unknown page type', (d) => d.writeUInt16LE(0x10, at(leaf) + 8), /has type 16, expected a branch or leaf page/],
      ['KeyValue key longer than its record', (d) => d.writeUInt8(0x7f, at(leaf) + 16 + d.readUInt32LE(at(leaf) + 16 + 4) + d.readUInt32LE(at(leaf) + 16 + 8) + 1), /KeyValue field runs \d+ bytes past its record/],
    ];
    for (const [what, damage, message] of cases) {
      const broken = Buffer.from(db);
      damage(broken);
      const path = join(dir, 'damaged.db');
      await writeFile(path, Buffer.concat([broken, createHash('sha256').update(broken).digest()]));
      const err = await withinSeconds(10, read(path));
      expect(err, what).toBeInstanceOf(IntegrityError);
      expect((err as Error).message, what).toMatch(message);
      expect((err as Error).message, what).toMatch(/^damaged\.db: [^\n]*the file is damaged$|^damaged\.db: [^\n]*the snapshot is damaged$/);
    }
  });

  it('kvdr inspect refuses a bad trailer and a damaged tree with exit 4 and one line', async () => {
    const good = await readFile(file);
    const flipped = Buffer.from(good);
    flipped[5000] = (flipped[5000] as number) ^ 1;
    const looped = Buffer.from(good.subarray(0, -32));
    const keyRoot = await keyBucketRoot(file);
    looped.writeBigUInt64LE(keyRoot, Number(keyRoot) * looped.readUInt32LE(16 + 8) + 16 + 8);
    const cases: [string, Buffer, RegExp][] = [
      ['flipped.db', flipped, /^kvdr: flipped\.db: sha256 trailer mismatch .*; the snapshot is corrupt and nothing was read from it$/],
      ['looped.db.gz', gzipSync(Buffer.concat([looped, createHash('sha256').update(looped).digest()])), /^kvdr: looped\.db\.gz: the B\+tree runs deeper than 64 levels .*; the file is damaged$/],
    ];
    for (const [name, bytes, message] of cases) {
      await writeFile(join(dir, name), bytes);
      const { code, stdout, stderr } = await kvdr(['inspect', join(dir, name)]);
      expect(code, name).toBe(4);
      expect(stdout, name).toBe('');
      expect(stderr.trimEnd().split('\n'), name).toHaveLength(1);
      expect(stderr.trimEnd(), name).toMatch(message);
    }
  });

  it('kvdr inspect reads a gzipped snapshot: revision, key count, prefixes with counts and bytes', async () => {
    const gz = join(dir, 'snap.db.gz');
    await writeFile(gz, gzipSync(await readFile(file)));
    const want = new Map<string, { prefix: string; keys: number; bytes: number }>();
    for (const [hex, { value }] of expected) {
      const key = Buffer.from(hex, 'hex').toString('utf8');
      const prefix = key.slice(0, key.indexOf('/') + 1);
      const entry = want.get(prefix) ?? { prefix, keys: 0, bytes: 0 };
      entry.keys++;
      entry.bytes += hex.length / 2 + value.length / 2;
      want.set(prefix, entry);
    }
    for (const path of [gz, file]) {
      const { code, stdout, stderr } = await kvdr(['inspect', path, '--json']);
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const summary = JSON.parse(stdout) as { format: string; revision: number; keys: number; bytes: number; prefixes: { prefix: string; keys: number; bytes: number }[] };
      expect(summary).toMatchObject({ format: 'etcd-snapshot', revision, keys: expected.size });
      expect(summary.prefixes).toEqual([...want.values()].sort((a, b) => a.prefix.localeCompare(b.prefix)));
      expect(summary.bytes).toBe([...want.values()].reduce((sum, p) => sum + p.bytes, 0));
    }
    const text = await kvdr(['inspect', gz]);
    expect(text.stdout).toMatch(new RegExp(`^etcd-snapshot, revision ${revision}\\n${expected.size} keys, `));
    expect(text.stdout).toMatch(/\bpwx\/\s+\d+\s+/);
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
        // etcd 3.5 sends no header with its snapshot messages (only the blob, and remaining_bytes), so the
        // revision is Status's just before: here, nothing was written between, the snapshot's own.
        expect(manifest.details['revisionFrom']).toBe('status-before-snapshot');
        expect(manifest.revision).toBe(snapshot.revision());
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

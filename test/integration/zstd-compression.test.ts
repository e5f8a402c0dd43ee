import { execFile, execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../src/repository/manifest.js';
import { S3Store } from '../../src/repository/s3-store.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { readAll } from '../../src/util/streams.js';
import { kvdr } from '../harness/cli.js';
import { consulPairs, consulPut } from '../harness/consul-instance.js';
import { etcdPairs, etcdState } from '../harness/etcd-state.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { PROJECT_ROOT } from '../harness/stack.js';

const run = promisify(execFile);
const DUMP = `${PROJECT_ROOT}test/fixtures/pxdump/pwx_kvdb_2018-05-25T22:59:08Z.dump`;
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** The Debian `zstd` tool (scripts/install-services.sh installs it): the reference decoder. */
const zstdTool = ((): boolean => {
  try {
    execFileSync('zstd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('compression: zstd for every kind', () => {
  let etcd: Etcd3;
  let bucket: TestBucket;
  let dir: string;
  let configPath: string;
  let cluster: string;
  let consulPrefix: string;
  const manifests = new Map<string, Manifest>();
  const env = (): NodeJS.ProcessEnv => ({ AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'), AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY') });
  const cli = (...args: string[]): ReturnType<typeof kvdr> => kvdr(['--config', configPath, ...args], env());
  const binaryKey = (): Buffer => Buffer.concat([Buffer.from(`pwx/${cluster}/bin/`), Buffer.from([0x00, 0xfe, 0xff])]);
  const stored = async (manifest: Manifest): Promise<Buffer> => {
    const store = new S3Store(bucket.repository());
    try {
      return await readAll(await store.get(manifest.repository.key));
    } finally {
      await store.close();
    }
  };

  beforeAll(async () => {
    etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    bucket = await createTestBucket('zstd');
    dir = await mkdtemp(join(tmpdir(), 'kvdr-zstd-'));
    cluster = uniqueName('zc');
    consulPrefix = `${uniqueName('zstd')}/`;
    // Enough repetitive data that the frame spans many blocks, plus a binary key and an empty value.
    for (let i = 0; i < 200; i++) await etcd.put(`pwx/${cluster}/volumes/v${String(i).padStart(3, '0')}`).value(JSON.stringify({ id: i, labels: { app: 'pg' }, pad: 'x'.repeat(500) }));
    await etcd.put(binaryKey()).value(Buffer.from([0xff, 0x00, 0x7f]));
    await etcd.put(`pwx/${cluster}/empty`).value('');
    await consulPut(requireEnv('KVDR_CONSUL_ADDR'), `${consulPrefix}a`, 'consul value', undefined, 7);
    await consulPut(requireEnv('KVDR_CONSUL_ADDR'), `${consulPrefix}dir/b`, Buffer.from([0, 1, 2, 0xff]));
    const dumps = join(dir, 'dumps');
    await mkdir(dumps);
    await copyFile(DUMP, join(dumps, 'pwx_kvdb_2018-05-25T22:59:08Z.dump'));
    configPath = join(dir, 'kvdr.yaml');
    const job = (name: string, source: string, kind: string): string => `  - {name: ${name}, source: ${source}, kind: ${kind}, schedule: "0 * * * *", repository: dr, compression: zstd}\n`;
    await writeFile(
      configPath,
      `sources:\n  - {name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], clusterId: ${cluster}}\n` +
        `  - {name: c, type: consul, endpoints: ["${requireEnv('KVDR_CONSUL_ADDR')}"], prefix: ${consulPrefix}}\n` +
        `repositories:\n  - {name: dr, type: s3, bucket: ${bucket.name}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true}\n` +
        `jobs:\n${job('snap', 'e', 'etcd-snapshot')}${job('export', 'e', 'etcd-export')}${job('consul-kv', 'c', 'consul-export')}${job('consul-snap', 'c', 'consul-snapshot')}${job('dumps', 'e', 'px-dumps')}` +
        `pxDumps: {dirs: [${dumps}], node: n1, stableSeconds: 0}\n`,
    );
    for (const name of ['snap', 'export', 'consul-kv', 'consul-snap', 'dumps']) {
      const backup = await cli('backup', name);
      expect(backup.code, backup.stderr).toBe(0);
      const listed = JSON.parse((await cli('backups', 'list', '--job', name, '--json')).stdout) as Manifest[];
      expect(listed).toHaveLength(1);
      manifests.set(name, listed[0] as Manifest);
    }
  }, 120_000);
  afterAll(async () => {
    etcd.close();
    await bucket.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('stores every kind as one zstd frame with a .zst key, and a Consul snapshot as the tar.gz it is', async () => {
    for (const name of ['snap', 'export', 'consul-kv', 'dumps']) {
      const manifest = manifests.get(name) as Manifest;
      expect(manifest.compression, name).toBe('zstd');
      expect(manifest.repository.key, name).toMatch(/\.zst$/);
      const bytes = await stored(manifest);
      expect(bytes.subarray(0, 4).equals(ZSTD_MAGIC), name).toBe(true);
      expect(manifest.bytes.stored).toBe(bytes.length);
    }
    expect(manifests.get('snap')?.repository.key).toMatch(/\.db\.zst$/);
    // The snapshot is compressed (how much depends on what else the shared test etcd holds by then).
    expect(manifests.get('snap')?.bytes.stored).toBeLessThan(manifests.get('snap')?.bytes.raw ?? 0);
    const consulSnap = manifests.get('consul-snap') as Manifest;
    expect(consulSnap.compression).toBe('none');
    expect(consulSnap.repository.key).not.toMatch(/\.zst$/);
    expect((await stored(consulSnap)).subarray(0, 2).equals(Buffer.from([0x1f, 0x8b]))).toBe(true);
  });

  it('verifies every zstd backup: sha256, then the inflated artifact\'s own checksums', async () => {
    const { code, stdout, stderr } = await cli('--json', 'verify', '--all');
    expect(code, stderr).toBe(0);
    const results = JSON.parse(stdout) as { backup: string; result: string; checks: string[] }[];
    for (const manifest of manifests.values()) expect(results.find((r) => r.backup === manifest.id)?.result, manifest.job).toBe('ok');
    expect(results.find((r) => r.backup === manifests.get('snap')?.id)?.checks).toContain('etcd sha256 trailer');
  });

  it('restores the etcd snapshot and the etcd export byte-exact', async () => {
    const source = await etcdPairs(etcd, `pwx/${cluster}/`);
    expect(source.size).toBe(202);
    for (const job of ['snap', 'export']) {
      const scratch = `drill/${uniqueName(`z-${job}`)}/`;
      const { code, stderr } = await cli('restore-from-s3', '--latest', '--job', job, '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', scratch);
      expect(code, stderr).toBe(0);
      const restored = await etcdPairs(etcd, scratch);
      expect(new Map([...restored].map(([k, v]) => [k.slice(scratch.length), v])), job).toEqual(new Map([...source].map(([k, v]) => [k.slice(`pwx/${cluster}/`.length), v])));
      const exact = await etcd.get(Buffer.concat([Buffer.from(`${scratch}bin/`), Buffer.from([0x00, 0xfe, 0xff])])).buffer();
      expect(exact?.equals(Buffer.from([0xff, 0x00, 0x7f])), job).toBe(true);
    }
  });

  it('restores the Consul export byte-exact, flags included', async () => {
    const scratch = `${uniqueName('z-consul')}/`;
    const { code, stderr } = await cli('restore-from-s3', '--latest', '--job', 'consul-kv', '--target', `consul:${requireEnv('KVDR_CONSUL_ADDR')}`, '--to-prefix', scratch);
    expect(code, stderr).toBe(0);
    const source = await consulPairs(requireEnv('KVDR_CONSUL_ADDR'), consulPrefix);
    const restored = await consulPairs(requireEnv('KVDR_CONSUL_ADDR'), scratch);
    expect(new Map([...restored].map(([k, v]) => [k.slice(scratch.length), v]))).toEqual(new Map([...source].map(([k, v]) => [k.slice(consulPrefix.length), v])));
    expect(restored.get(`${scratch}a`)?.flags).toBe(7);
  });

  it('restores the PX dump byte-exact under its cluster', async () => {
    const scratch = `drill/${uniqueName('z-dump')}/`;
    const { code, stderr } = await cli('restore-from-s3', '--latest', '--job', 'dumps', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', scratch);
    expect(code, stderr).toBe(0);
    const dump = JSON.parse(await readFile(DUMP, 'utf8')) as { Key: string; Value: string | null }[];
    const expected = new Map(dump.map((r) => [`${scratch}${r.Key}`, Buffer.from(r.Value ?? '', 'base64').toString('hex')]));
    expect(await etcdPairs(etcd, scratch)).toEqual(expected);
  });

  it.skipIf(!zstdTool)('stores a snapshot that `zstd -d` turns into a file etcdctl accepts', async () => {
    const manifest = manifests.get('snap') as Manifest;
    const file = join(dir, 'snap.db.zst');
    await writeFile(file, await stored(manifest));
    await run('zstd', ['-t', '-q', file]); // the frame's own checksum, by the reference tool
    await run('zstd', ['-d', '-q', '-f', file, '-o', join(dir, 'snap.db')]);
    const db = await readFile(join(dir, 'snap.db'));
    expect(db.length).toBe(manifest.bytes.raw);
    const status = JSON.parse((await run('etcdctl', ['snapshot', 'status', join(dir, 'snap.db'), '-w', 'json'], { env: { ...process.env, ETCDCTL_API: '3' } })).stdout) as { revision: number };
    expect(status.revision).toBe(manifest.revision);
  });

  it('refuses a truncated or corrupt zstd artifact with exit 4, in one line, writing nothing', async () => {
    const bytes = await stored(manifests.get('export') as Manifest);
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length / 2)] = (flipped[Math.floor(bytes.length / 2)] ?? 0) ^ 0xff;
    const cases: [string, Buffer, RegExp][] = [
      ['cut.ndjson.zst', bytes.subarray(0, bytes.length - 40), /^kvdr: cut\.ndjson\.zst: truncated zstd: the data ends after \d+ compressed bytes, before the end of the zstd frame; .*damaged.*$/],
      ['flipped.ndjson.zst', flipped, /^kvdr: flipped\.ndjson\.zst: (corrupt zstd data|zstd checksum mismatch).*damaged.*$/],
      ['tail.ndjson.zst', Buffer.concat([bytes, Buffer.alloc(8)]), /^kvdr: tail\.ndjson\.zst: 8 bytes after the end of the zstd frame.*$/],
    ];
    for (const [name, content, message] of cases) {
      const file = join(dir, name);
      await writeFile(file, content);
      const before = await etcdState(etcd);
      const { code, stderr } = await kvdr(['restore', '--file', file, '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', `drill/${uniqueName('z-bad')}/`, '--no-safety-backup'], env());
      expect(code, stderr).toBe(ExitCode.Integrity);
      expect(stderr.trim().split('\n').at(-1), name).toMatch(message);
      expect(stderr.trim().split('\n').filter((l) => l.startsWith('kvdr: '))).toHaveLength(1);
      expect(await etcdState(etcd)).toEqual(before);
    }
  });
});

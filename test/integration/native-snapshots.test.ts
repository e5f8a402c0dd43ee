import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { create, list } from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readConsulSnapshotKv } from '../../src/formats/consul-state-reader.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { kvdr } from '../harness/cli.js';
import { consulPairs, consulPut, startConsul, type ConsulInstance } from '../harness/consul-instance.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { freePorts } from '../harness/ports.js';

const run = promisify(execFile);

describe('Consul snapshot reader (state.bin) and kvdr inspect', () => {
  let consul: ConsulInstance;
  let dir: string;
  let file: string;

  beforeAll(async () => {
    consul = await startConsul();
    dir = await mkdtemp(join(tmpdir(), 'kvdr-native-'));
    for (let i = 0; i < 200; i++) await consulPut(consul.address, `pwx/c1/k/${String(i).padStart(4, '0')}`, `v${i}`, undefined, i % 3);
    for (let i = 0; i < 200; i += 4) await consulPut(consul.address, `pwx/c1/k/${String(i).padStart(4, '0')}`, `overwritten ${i}`);
    await fetch(`${consul.address}/v1/kv/pwx/c1/k/01?recurse`, { method: 'DELETE' });
    await consulPut(consul.address, 'pwx/c1/binary', randomBytes(300 * 1024));
    await consulPut(consul.address, 'pwx/c1/empty', '');
    await consulPut(consul.address, 'other/ключ', 'значение', undefined, 9);
    file = join(dir, 'consul.snap');
    await consul.ctl('snapshot', 'save', file);
  }, 120_000);
  afterAll(async () => {
    await consul.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('yields exactly the keys, values and flags a recursive read returns', async () => {
    const live = await consulPairs(consul.address, '');
    const read = new Map<string, { value: Buffer; flags: number }>();
    let index: number | undefined;
    for await (const r of readConsulSnapshotKv(createReadStream(file), 'consul.snap', (meta) => (index = meta?.Index))) {
      read.set(r.key.toString('utf8'), { value: r.value, flags: r.flags ?? 0 });
    }
    expect([...read.keys()].sort()).toEqual([...live.keys()].sort());
    for (const [key, pair] of live) {
      expect(read.get(key)?.value.equals(pair.value), key).toBe(true);
      expect(read.get(key)?.flags, key).toBe(pair.flags);
    }
    expect(index).toBeGreaterThan(0);
  });

  it('inspect reports kind, index, key count and top-level prefixes of a file', async () => {
    const { code, stdout } = await kvdr(['inspect', file, '--json']);
    expect(code).toBe(0);
    const summary = JSON.parse(stdout) as { format: string; index: number; keys: number; prefixes: { prefix: string; keys: number }[] };
    expect(summary.format).toBe('consul-snapshot');
    expect(summary.keys).toBe((await consulPairs(consul.address, '')).size);
    expect(summary.prefixes.map((p) => [p.prefix, p.keys])).toEqual([['other/', 1], ['pwx/', summary.keys - 1]]);
    const meta = JSON.parse((await members(file)).get('meta.json')?.toString() ?? '') as { Index: number };
    expect(summary.index).toBe(meta.Index);
    expect((await kvdr(['inspect', file])).stdout).toMatch(new RegExp(`^consul-snapshot, raft index ${meta.Index}\\n${summary.keys} keys, `));
  });

  it('refuses a tampered, foreign, damaged or unknown-layout Consul snapshot in one line', async () => {
    const original = await members(file);
    const state = original.get('state.bin') as Buffer;
    const at = state.indexOf('overwritten 0');
    expect(at).toBeGreaterThan(0);
    const cases: [string, Map<string, Buffer>, { resum: boolean; code: number; message: RegExp }][] = [
      ['tampered-value.snap', change(original, 'state.bin', Buffer.concat([state.subarray(0, at), Buffer.from('overwritten X'), state.subarray(at + 13)])), { resum: false, code: 4, message: /SHA256SUMS mismatch for state\.bin .*; the snapshot is corrupt/ }],
      // Tampered where decoding fails first: the archive's verdict is still what is reported.
      ['tampered-header.snap', change(original, 'state.bin', Buffer.concat([Buffer.from([0xc1]), state.subarray(1)])), { resum: false, code: 4, message: /SHA256SUMS mismatch for state\.bin/ }],
      ['undecodable.snap', change(original, 'state.bin', Buffer.concat([Buffer.from([0xc1]), state.subarray(1)])), { resum: true, code: 4, message: /state\.bin cannot be decoded .*; the snapshot is damaged or of an unknown layout$/ }],
      ['truncated-state.snap', change(original, 'state.bin', state.subarray(0, Math.floor(state.length / 2))), { resum: true, code: 4, message: /state\.bin (cannot be decoded|ends after a type byte)/ }],
      ['no-header.snap', change(original, 'state.bin', Buffer.concat([Buffer.from([0x01]), state.subarray(1)])), { resum: true, code: 4, message: /state\.bin does not start with a snapshot header; unknown snapshot layout$/ }],
      ['bad-meta.snap', change(original, 'meta.json', Buffer.from('{not json')), { resum: true, code: 4, message: /meta\.json is not valid JSON$/ }],
      ['meta-version.snap', change(original, 'meta.json', Buffer.from(JSON.stringify({ ...JSON.parse(original.get('meta.json')?.toString() ?? '') as object, Version: 2 }))), { resum: true, code: 4, message: /meta\.json says snapshot version 2; kvdr reads raft snapshot version 1 \(unknown snapshot layout\)$/ }],
      ['no-state.snap', change(original, 'state.bin', undefined), { resum: true, code: 4, message: /archive lacks state\.bin; the stream was cut short or is not a Consul snapshot$/ }],
      ['extra-member.snap', new Map([...original, ['notes.txt', Buffer.from('hello')]]), { resum: true, code: 4, message: /unexpected archive member "notes\.txt"; this is not a Consul snapshot$/ }],
      // Not recognised as a snapshot at all: a usage error (exit 2) before any reader runs.
      ['foreign.tar.gz', new Map([['hello.txt', Buffer.from('hello')]]), { resum: false, code: 2, message: /not an artifact kvdr can restore/ }],
    ];
    for (const [name, content, want] of cases) {
      const path = await pack(join(dir, name), content, want.resum);
      const { code, stdout, stderr } = await kvdr(['inspect', path]);
      expect(code, name).toBe(want.code);
      expect(stdout, name).toBe('');
      expect(stderr.trimEnd().split('\n'), name).toHaveLength(1);
      expect(stderr.trimEnd(), name).toMatch(new RegExp(`^kvdr: ${name.replace(/\./g, '\\.')}: `));
      expect(stderr.trimEnd(), name).toMatch(want.message);
    }
    // The reader itself refuses the foreign archive too, when it is handed one.
    const foreign = readConsulSnapshotKv(createReadStream(join(dir, 'foreign.tar.gz')), 'foreign.tar.gz');
    await expect((async () => {
      for await (const _ of foreign) void _;
    })()).rejects.toThrow(/^foreign\.tar\.gz: unexpected archive member "hello\.txt"; this is not a Consul snapshot$/);
  });

  it('inspect reads a backup by id from the repository, and an etcd snapshot file', async () => {
    const repo = join(dir, 'repo');
    const config = join(dir, 'kvdr.yaml');
    const prefix = `${uniqueName('inspect')}/`;
    const etcdctl = (...args: string[]) => run('etcdctl', ['--endpoints', requireEnv('KVDR_ETCD_ENDPOINT'), ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
    for (const k of ['a/1', 'a/2', 'b/1']) await etcdctl('put', `${prefix}${k}`, 'x');
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], prefix: ${prefix}}]\n` +
        `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
        `jobs: [{name: export, source: e, kind: etcd-export, schedule: "0 * * * *", repository: local}]\n`,
    );
    const id = (await kvdr(['--config', config, 'backup', 'export'])).stdout.trim();
    const byId = await kvdr(['--config', config, 'inspect', id, '--depth', '2']);
    expect(byId.code).toBe(0);
    expect(byId.stdout).toMatch(new RegExp(`^backup ${id}, etcd-export, revision \\d+\\n3 keys`));
    expect(byId.stdout).toMatch(new RegExp(`${prefix}a/\\s+2`));

    const snap = join(dir, 'etcd.db');
    await etcdctl('snapshot', 'save', snap);
    const file = await kvdr(['inspect', snap, '--json']);
    const summary = JSON.parse(file.stdout) as { format: string; revision: number; keys: number };
    expect(summary.format).toBe('etcd-snapshot');
    const client = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    const live = await client.getAll().count();
    client.close();
    expect(summary.keys).toBe(live); // the shared etcd is quiet while files run one at a time
    expect(summary.revision).toBeGreaterThan(0);
  });

  it('inspect --json of a gzipped etcd-snapshot backup by id carries the revision the snapshot holds', async () => {
    const repo = join(dir, 'snap-repo');
    const config = join(dir, 'snap.yaml');
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"]}]\n` +
        `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
        `jobs: [{name: snap, source: e, kind: etcd-snapshot, compression: gzip, schedule: "0 * * * *", repository: local}]\n`,
    );
    const id = (await kvdr(['--config', config, 'backup', 'snap'])).stdout.trim();
    const stored = (await readdir(repo, { recursive: true })).find((f) => f.endsWith(`${id}.db.gz`));
    expect(stored).toBeDefined();
    const byId = await kvdr(['--config', config, 'inspect', id, '--json']);
    expect(byId.stderr).toBe('');
    const summary = JSON.parse(byId.stdout) as { backup: string; kind: string; format: string; revision: number; keys: number; prefixes: unknown[] };
    const fromFile = JSON.parse((await kvdr(['inspect', join(repo, stored as string), '--json'])).stdout) as typeof summary;
    expect(summary).toMatchObject({ backup: id, kind: 'etcd-snapshot', format: 'etcd-snapshot', revision: fromFile.revision, keys: fromFile.keys, prefixes: fromFile.prefixes });
    expect(summary.revision).toBeGreaterThan(0);
    expect((await kvdr(['--config', config, 'inspect', id])).stdout).toMatch(new RegExp(`^backup ${id}, etcd-snapshot, revision ${summary.revision}\\n`));
  });

  it('--mode native restores a whole Consul snapshot into an empty agent, and refuses a populated one without --force', async () => {
    const repo = join(dir, 'native-consul');
    const config = join(dir, 'native-consul.yaml');
    await writeFile(
      config,
      `sources: [{name: c, type: consul, endpoints: ["${consul.address}"]}]\n` +
        `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
        `jobs: [{name: snap, source: c, kind: consul-snapshot, schedule: "0 * * * *", repository: local}]\n`,
    );
    const id = (await kvdr(['--config', config, 'backup', 'snap'])).stdout.trim();
    const fresh = await startConsul();
    try {
      const first = await kvdr(['--config', config, 'restore-from-s3', '--backup', id, '--mode', 'native', '--target', `consul:${fresh.address}`]);
      expect(first.stderr).not.toMatch(/^kvdr: /m);
      expect(first.code).toBe(0);
      const restored = await consulPairs(fresh.address, '');
      const original = await consulPairs(consul.address, '');
      expect([...restored.keys()].sort()).toEqual([...original.keys()].sort());
      const again = await kvdr(['--config', config, 'restore-from-s3', '--backup', id, '--mode', 'native', '--target', `consul:${fresh.address}`]);
      expect(again.code).toBe(3);
      expect(again.stderr).toMatch(/a native restore replaces all of them; nothing was changed/);
    } finally {
      await fresh.stop();
    }
  });

  it('--mode native builds an etcd member data directory that etcd starts from', async () => {
    const repo = join(dir, 'native-etcd');
    const config = join(dir, 'native-etcd.yaml');
    const marker = `${uniqueName('native')}/key`;
    await run('etcdctl', ['--endpoints', requireEnv('KVDR_ETCD_ENDPOINT'), 'put', marker, 'from the snapshot'], { env: { ...process.env, ETCDCTL_API: '3' } });
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"]}]\n` +
        `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
        `jobs: [{name: snap, source: e, kind: etcd-snapshot, schedule: "0 * * * *", repository: local}]\n`,
    );
    const id = (await kvdr(['--config', config, 'backup', 'snap'])).stdout.trim();
    const target = ['--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`];
    const refused = await kvdr(['--config', config, 'restore-from-s3', '--backup', id, '--mode', 'native', ...target]);
    expect(refused.code).toBe(3);

    const [client, peer] = (await freePorts(2)) as [number, number];
    const dataDir = join(dir, 'member');
    const built = await kvdr(['--config', config, 'restore-from-s3', '--backup', id, '--mode', 'native', ...target, '--force', '--data-dir', dataDir, '--peer-url', `http://127.0.0.1:${peer}`]);
    expect(built.stderr).not.toMatch(/^kvdr: /m);
    expect(built.code).toBe(0);
    expect(built.stdout).toContain(`etcd --name default --data-dir ${dataDir}`);
    const member = spawn('etcd', ['--name', 'default', '--data-dir', dataDir, '--initial-cluster', `default=http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`, '--listen-peer-urls', `http://127.0.0.1:${peer}`,
      '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`], { stdio: 'ignore' });
    try {
      const ctl = (...args: string[]) => run('etcdctl', ['--endpoints', `http://127.0.0.1:${client}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
      for (let i = 0; i < 100 && !(await ctl('endpoint', 'health').then(() => true, () => false)); i++) await new Promise((r) => setTimeout(r, 200));
      expect((await ctl('get', marker, '--print-value-only')).stdout.trim()).toBe('from the snapshot');
    } finally {
      member.kill('SIGKILL');
    }
    // The live cluster was only read: a safety backup of it was taken before the data directory was built.
    const list = await kvdr(['--config', config, 'backups', 'list', '--job', 'safety-backup', '--json']);
    expect((JSON.parse(list.stdout) as unknown[]).length).toBe(1);
  });
});

/** The members of a Consul snapshot archive, in archive order. */
async function members(path: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  await list({
    file: path,
    onReadEntry: (entry) => {
      const parts: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => parts.push(chunk));
      entry.on('end', () => out.set(entry.path, Buffer.concat(parts)));
    },
  });
  return out;
}

/** A copy of an archive's members with one replaced (or, given undefined, left out). */
function change(from: Map<string, Buffer>, name: string, content: Buffer | undefined): Map<string, Buffer> {
  const out = new Map(from);
  if (content === undefined) out.delete(name);
  else out.set(name, content);
  return out;
}

/** Writes members as Consul does — gzip(tar) — with SHA256SUMS recomputed for them when `resum`. */
async function pack(path: string, content: Map<string, Buffer>, resum: boolean): Promise<string> {
  const staging = await mkdtemp(join(tmpdir(), 'kvdr-snap-members-'));
  try {
    const files = new Map(content);
    if (resum) {
      const sums = [...files].filter(([name]) => name !== 'SHA256SUMS').map(([name, bytes]) => `${createHash('sha256').update(bytes).digest('hex')}  ${name}\n`);
      files.set('SHA256SUMS', Buffer.from(sums.join('')));
    }
    for (const [name, bytes] of files) await writeFile(join(staging, name), bytes);
    await create({ gzip: true, file: path, cwd: staging, portable: true }, [...files.keys()]);
    return path;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

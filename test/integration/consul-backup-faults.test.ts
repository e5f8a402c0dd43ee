import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBackup } from '../../src/backup/run-backup.js';
import { storeArtifact } from '../../src/backup/store-artifact.js';
import { verifyConsulSnapshot } from '../../src/formats/consul-snapshot.js';
import { FsStore } from '../../src/repository/fs-store.js';
import { IntegrityError } from '../../src/util/errors.js';
import { createLogger } from '../../src/util/logger.js';
import { kvdr } from '../harness/cli.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { consulPut, startConsul, waitForLeader } from '../harness/consul-instance.js';
import { failureOf } from '../harness/failure.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';

const run = promisify(execFile);

/** Waits until a server has applied the write of this key (a stale read on it finds the key). */
async function waitForIndexOn(address: string, key: string): Promise<void> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 200))) {
    if ((await fetch(`${address}/v1/kv/${key}?stale`).catch(() => undefined))?.ok) return;
  }
  throw new Error(`${address} never saw ${key}`);
}

describe('Consul backups: faults and bad input', () => {
  let dir: string;
  let snapshot: Buffer;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-consul-faults-'));
    const file = join(dir, 'real.snap');
    await run(`${requireEnv('KVDR_BIN_DIR')}/consul`, ['snapshot', 'save', file], { env: { ...process.env, CONSUL_HTTP_ADDR: requireEnv('KVDR_CONSUL_ADDR') } });
    snapshot = await readFile(file);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function store(snap: Buffer): Promise<{ err: Error | undefined; keys: string[] }> {
    const repo = new FsStore({ path: join(dir, uniqueName('repo')) });
    const err = await storeArtifact(repo, 'x.snap', Readable.from([snap]).pipe(verifyConsulSnapshot('test snapshot')), { compression: 'none' }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    const keys: string[] = [];
    for await (const info of repo.list()) keys.push(info.key);
    return { err, keys };
  }

  /** Rewrites one byte inside the tar (under the gzip), so only SHA256SUMS can notice. */
  function tamper(snap: Buffer, member: string): Buffer {
    const tar = gunzipSync(snap);
    const header = tar.indexOf(Buffer.from(member));
    const at = header + 512 + 10; // inside the member's first data block
    tar[at] = (tar[at] as number) ^ 0xff;
    return gzipSync(tar);
  }

  it('passes a real snapshot through unchanged', async () => {
    const { err, keys } = await store(snapshot);
    expect(err).toBeUndefined();
    expect(keys).toEqual(['x.snap']);
  });

  it.each(['state.bin', 'meta.json'])('refuses a snapshot whose %s does not match SHA256SUMS, storing nothing', async (member) => {
    const { err, keys } = await store(tamper(snapshot, member));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err?.message).toContain(`SHA256SUMS mismatch for ${member}`);
    expect(keys).toEqual([]);
  });

  it('refuses a truncated stream, storing nothing', async () => {
    const { err, keys } = await store(snapshot.subarray(0, Math.floor(snapshot.length / 2)));
    expect(err?.message).toMatch(/damaged or cut short|lacks/);
    expect(keys).toEqual([]);
  });

  it('refuses something that is not a Consul snapshot', async () => {
    const { err } = await store(randomBytes(4096));
    expect(err).toBeInstanceOf(IntegrityError);
  });

  it('fails in one line and lists nothing when Consul stops mid-stream', async () => {
    const consul = await startConsul();
    try {
      for (let i = 0; i < 60; i++) await consulPut(consul.address, `big/${i}`, randomBytes(500 * 1024));
      const repo = join(dir, 'stopped');
      const cfg = testConfig({
        sources: [{ name: 'c', type: 'consul', endpoints: [consul.address] }],
        repositories: [{ name: 'dr', type: 'fs', path: repo }],
        jobs: [{ name: 'j', source: 'c', kind: 'consul-snapshot', schedule: '0 * * * *', repository: 'dr' }],
      });
      let killed = false;
      const err = await failureOf(
        runBackup({
          config: cfg,
          job: 'j',
          logger: quietLogger,
          onProgress: (bytes) => {
            if (!killed && bytes > 1024 * 1024) {
              killed = true;
              consul.kill();
            }
          },
        }),
      );
      expect(killed).toBe(true);
      expect(err.message).not.toContain('\n');
      expect(err.message).toMatch(/consul http:\/\/127\.0\.0\.1:\d+: cannot take a snapshot|consul snapshot .*(cut short|damaged)/);
      expect(await readdir(join(repo, 'manifests')).catch(() => [])).toEqual([]);
    } finally {
      await consul.stop();
    }
  });

  it('says there is no leader, in one line', async () => {
    const leaderless = await startConsul({ bootstrapExpect: 3 });
    try {
      const cfg = testConfig({
        sources: [{ name: 'c', type: 'consul', endpoints: [leaderless.address] }],
        repositories: [{ name: 'dr', type: 'fs', path: join(dir, 'leaderless') }],
        jobs: [
          { name: 'snap', source: 'c', kind: 'consul-snapshot', schedule: '0 * * * *', repository: 'dr' },
          { name: 'export', source: 'c', kind: 'consul-export', schedule: '0 * * * *', repository: 'dr' },
        ],
      });
      for (const job of ['snap', 'export']) {
        const err = await failureOf(runBackup({ config: cfg, job, logger: quietLogger }));
        expect(err.message, job).toMatch(/Consul has no cluster leader/);
      }
    } finally {
      await leaderless.stop();
    }
  });

  it('with stale: a server that never saw a leader has nothing to serve, and says so in one line', async () => {
    // Consul serves stale reads from a server's own state; a server that never joined a cluster with a
    // leader has none: its snapshot is refused by Raft, and KV reads still answer "No cluster leader".
    const leaderless = await startConsul({ bootstrapExpect: 3 });
    try {
      const repo = join(dir, 'never-led');
      const cfg = testConfig({
        sources: [{ name: 'c', type: 'consul', endpoints: [leaderless.address], stale: true }],
        repositories: [{ name: 'dr', type: 'fs', path: repo }],
        jobs: [
          { name: 'snap', source: 'c', kind: 'consul-snapshot', schedule: '0 * * * *', repository: 'dr' },
          { name: 'export', source: 'c', kind: 'consul-export', schedule: '0 * * * *', repository: 'dr' },
        ],
      });
      const snap = await failureOf(runBackup({ config: cfg, job: 'snap', logger: quietLogger }));
      expect(snap.message).toMatch(/cannot take a snapshot: the server holds no Raft state to snapshot \(Raft error when taking snapshot: nothing new to snapshot\); it has never been part of a cluster with a leader/);
      const exported = await failureOf(runBackup({ config: cfg, job: 'export', logger: quietLogger }));
      expect(exported.message).toMatch(/Consul has no cluster leader \(this server refused even a stale read: it has had no leader to get state from\); wait for an election/);
      for (const err of [snap, exported]) expect(err.message).not.toContain('\n');
      expect(await readdir(join(repo, 'manifests')).catch(() => [])).toEqual([]);
    } finally {
      await leaderless.stop();
    }
  });

  it('with stale: a server whose cluster lost its leader still serves snapshots and exports, and the manifest says no leader was known', async () => {
    // Two servers elect a leader; killing one leaves the other without a quorum, so without a leader, but with the data.
    const first = await startConsul({ bootstrapExpect: 2, node: 'one' });
    const second = await startConsul({ bootstrapExpect: 2, node: 'two', join: [first.lanAddress] }).catch(async (err: unknown) => {
      await first.stop();
      throw err;
    });
    try {
      await waitForLeader(first.address);
      await consulPut(first.address, 'scope/a', '1');
      await consulPut(first.address, 'scope/b', '2');
      // Both servers have applied the writes (a follower learns of a commit a heartbeat later).
      for (const server of [first, second]) await waitForIndexOn(server.address, 'scope/b');
      second.kill();
      await waitForLeader(first.address, false);

      const repo = join(dir, 'lost-leader');
      const cfg = (stale: boolean) =>
        testConfig({
          sources: [{ name: 'c', type: 'consul', endpoints: [first.address], prefix: 'scope/', stale }],
          repositories: [{ name: 'dr', type: 'fs', path: repo }],
          jobs: [
            { name: 'snap', source: 'c', kind: 'consul-snapshot', schedule: '0 * * * *', repository: 'dr' },
            { name: 'export', source: 'c', kind: 'consul-export', schedule: '0 * * * *', repository: 'dr' },
          ],
        });
      // Without stale: no leader, no backup.
      for (const job of ['snap', 'export']) {
        expect((await failureOf(runBackup({ config: cfg(false), job, logger: quietLogger }))).message, job).toMatch(/Consul has no cluster leader; wait/);
      }
      // With stale: both work, and say that no leader was known.
      let logged = '';
      const logger = createLogger({ level: 'warn', pretty: false, destination: new Writable({ write: (chunk: Buffer, _e, done) => done(void (logged += chunk.toString())) }) });
      const snap = await runBackup({ config: cfg(true), job: 'snap', logger });
      expect(snap.bytes.raw).toBeGreaterThan(0);
      expect(snap.details).toMatchObject({ knownLeader: false, consulVersion: '1.20.1' });
      expect(snap.details['lastContactMs']).toBeGreaterThan(0);
      const exported = await runBackup({ config: cfg(true), job: 'export', logger });
      expect(exported.records).toBe(2);
      expect(exported.details).toMatchObject({ knownLeader: false });
      const warnings = logged.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(warnings).toEqual([
        expect.stringMatching(/answered a stale read without a known leader \(last contact with a leader \d+ ms ago\); the backup may miss the latest writes$/),
        expect.stringMatching(/answered a stale read without a known leader/),
      ]);
      // What a stale snapshot holds is a real snapshot: consul snapshot inspect reads it.
      expect(await first.ctl('snapshot', 'inspect', join(repo, snap.repository.key))).toMatch(/KVS/);
    } finally {
      await second.stop();
      await first.stop();
    }
  }, 180_000);

  it('exits 1 in one line when Consul is unreachable, and lists Consul backups beside etcd ones', async () => {
    const repo = join(dir, 'cli');
    await mkdir(repo, { recursive: true });
    const path = join(dir, 'cli.yaml');
    const write = (consul: string): Promise<void> =>
      writeFile(
        path,
        `sources:\n  - {name: c, type: consul, endpoints: ["${consul}"]}\n  - {name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"]}\n` +
          `repositories: [{name: dr, type: fs, path: ${repo}}]\n` +
          `jobs:\n  - {name: consul-snap, source: c, kind: consul-snapshot, schedule: "0 * * * *", repository: dr}\n` +
          `  - {name: etcd-snap, source: e, kind: etcd-snapshot, schedule: "0 * * * *", repository: dr}\n`,
      );
    await write('http://127.0.0.1:1');
    const down = await kvdr(['--config', path, '--log-level', 'silent', 'backup', 'consul-snap']);
    expect(down.code).toBe(1);
    expect(down.stderr.trim()).toMatch(/^kvdr: consul http:\/\/127\.0\.0\.1:1: cannot take a snapshot: cannot reach Consul \(ECONNREFUSED\)/);

    await write(requireEnv('KVDR_CONSUL_ADDR'));
    expect((await kvdr(['--config', path, 'backup', 'consul-snap'])).code).toBe(0);
    expect((await kvdr(['--config', path, 'backup', 'etcd-snap'])).code).toBe(0);
    const list = await kvdr(['--config', path, 'backups', 'list']);
    const kinds = list.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[2]);
    expect(kinds).toEqual(['consul-snapshot', 'etcd-snapshot']);
  });
});

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCatalog } from '../../src/repository/catalog.js';
import { FsStore } from '../../src/repository/fs-store.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { freePorts } from '../harness/ports.js';
import { oneLeader, replicaRole } from '../harness/replicas.js';
import { waitFor } from '../harness/wait.js';
import { PROJECT_ROOT } from '../harness/stack.js';

describe.each([
  ['etcd', 5, 20_000],
  ['consul', 10, 45_000], // Consul may take up to twice the session TTL to expire a dead leader's session
])('kvdr serve with leader election (%s)', (backend, ttlSeconds, takeoverMs) => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-failover-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('only the leader schedules; when it is killed the other takes over, and no slot runs twice', async () => {
    const repo = join(dir, `repo-${backend}`);
    const election = uniqueName('election');
    const ports = await freePorts(2);
    const replicas: { child: ChildProcess; port: number; exited: Promise<number | null> }[] = [];
    for (const port of ports) {
      const config = join(dir, `replica-${port}.yaml`);
      await writeFile(
        config,
        `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], prefix: ${uniqueName('ha')}/},\n` +
          `          {name: c, type: consul, endpoints: ["${requireEnv('KVDR_CONSUL_ADDR')}"]}]\n` +
          `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
          `jobs: [{name: every2s, source: e, kind: etcd-export, compression: none, schedule: "*/2 * * * * *", repository: local, retention: {keepLast: 1000, minDays: 0}}]\n` +
          `service: {listen: "127.0.0.1:${port}", leaderElection: {backend: ${backend}, source: ${backend === 'etcd' ? 'e' : 'c'}, key: ${election}, ttlSeconds: ${ttlSeconds}}}\n`,
      );
      const child = spawn(process.execPath, [`${PROJECT_ROOT}dist/cli/kvdr.js`, '--config', config, 'serve'], { stdio: 'ignore' });
      replicas.push({ child, port, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) });
    }
    const store = new FsStore({ path: repo });
    try {
      // Both replicas up, exactly one of them leading (a replica still starting says 'starting').
      const roles = await oneLeader(ports);
      const first = replicas[roles.indexOf('leader')] as (typeof replicas)[number];
      const second = replicas[roles.indexOf('follower')] as (typeof replicas)[number];

      await waitFor(async () => (await readCatalog(store)).length >= 3, 'backups by the first leader');
      first.child.kill('SIGKILL');
      const killedAt = Date.now();
      await waitFor(async () => (await replicaRole(second.port)) === 'leader', 'the other replica to take over', takeoverMs);
      await waitFor(async () => (await readCatalog(store)).some((m) => Date.parse(m.startedAt) > killedAt), 'a backup by the new leader');
      await waitFor(async () => (await readCatalog(store)).filter((m) => Date.parse(m.startedAt) > killedAt).length >= 2, 'more backups by the new leader');
      second.child.kill('SIGTERM');
      expect(await second.exited).toBe(0);

      const catalog = await readCatalog(store);
      const slots = catalog.filter((m) => m.details['trigger'] === 'schedule').map((m) => m.details['slot']);
      expect(slots.length).toBeGreaterThanOrEqual(3);
      expect(new Set(slots).size).toBe(slots.length); // every cron slot ran at most once, across both replicas
      expect(catalog.every((m) => ['schedule', 'catch-up'].includes(String(m.details['trigger'])))).toBe(true);
    } finally {
      for (const r of replicas) r.child.kill('SIGKILL');
    }
  });
});

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCatalog } from '../../src/repository/catalog.js';
import { FsStore } from '../../src/repository/fs-store.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { PROJECT_ROOT } from '../harness/stack.js';

describe('kvdr serve', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-serve-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('catches up, backs up real etcd on its schedule, and stops cleanly on SIGTERM', async () => {
    const repo = join(dir, 'repo');
    const config = join(dir, 'kvdr.yaml');
    await writeFile(
      config,
      `sources: [{name: e, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], prefix: ${uniqueName('serve')}/}]\n` +
        `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
        `jobs: [{name: every2s, source: e, kind: etcd-export, schedule: "*/2 * * * * *", repository: local, retention: {keepLast: 100, minDays: 0}}]\n`,
    );
    const child = spawn(process.execPath, [`${PROJECT_ROOT}dist/cli/kvdr.js`, '--config', config, 'serve'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let logs = '';
    child.stderr.on('data', (d: Buffer) => (logs += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const store = new FsStore({ path: repo });
    try {
      const deadline = Date.now() + 20_000;
      while ((await readCatalog(store)).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      const catalog = await readCatalog(store);
      expect(catalog.length, logs).toBeGreaterThanOrEqual(3);
      expect(logs).toContain('missed a slot: running it now');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
    expect(logs).toContain('scheduler stopped');
    // Every listed backup is whole: its artifact is there with the size its manifest records.
    for (const manifest of await readCatalog(store)) expect((await store.head(manifest.repository.key))?.size).toBe(manifest.bytes.stored);
  });
});

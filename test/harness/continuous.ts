import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { Etcd3 } from 'etcd3';
import { readChain } from '../../src/repository/chain-reader.js';
import { chainPath, listSegments } from '../../src/repository/chains.js';
import { readCatalog } from '../../src/repository/catalog.js';
import type { ObjectStore } from '../../src/repository/object-store.js';
import type { ChangeEvent } from '../../src/formats/change-segment.js';
import { PROJECT_ROOT } from './stack.js';

/** One operation of the random writer and the revision (or index) the source gave it. */
export interface WrittenChange {
  op: 'put' | 'del';
  key: Buffer;
  revision: number;
  at: number;
}

/**
 * Random puts, overwrites, deletes and re-creates under a prefix for `durationMs`, binary keys and
 * values among them, as fast as `perSecond` allows; returns what was done with the revisions etcd gave.
 */
export async function randomEtcdWrites(etcd: Etcd3, prefix: string, durationMs: number, perSecond = 50): Promise<WrittenChange[]> {
  const keys = Array.from({ length: 40 }, (_, i) => (i % 5 === 0 ? Buffer.concat([Buffer.from(prefix), Buffer.from([0x00, 0xff, i]), Buffer.from('/bin')]) : Buffer.from(`${prefix}k/${i}`)));
  const live = new Set<number>();
  const done: WrittenChange[] = [];
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    const i = randomInt(keys.length);
    const key = keys[i] as Buffer;
    if (live.has(i) && randomInt(4) === 0) {
      const res = await etcd.delete().key(key).exec();
      live.delete(i);
      done.push({ op: 'del', key, revision: Number(res.header.revision), at: Date.now() });
    } else {
      const value = randomInt(3) === 0 ? randomBytes(randomInt(1, 2048)) : Buffer.from(`v${done.length}-${randomBytes(4).toString('hex')}`);
      const res = await etcd.put(key).value(value).exec();
      live.add(i);
      done.push({ op: 'put', key, revision: Number(res.header.revision), at: Date.now() });
    }
    await new Promise((resolve) => setTimeout(resolve, 1000 / perSecond));
  }
  return done;
}

/**
 * Keys (relative to the prefix) and values, hex, under a prefix at a revision — as `etcdctl get --rev=N
 * --prefix` shows them — or now when no revision is given.
 */
export async function etcdPrefixAt(etcd: Etcd3, prefix: Buffer, revision?: number): Promise<Map<string, string>> {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] as number) + 1;
  const res = await etcd.kv.range({ key: prefix, range_end: end, ...(revision !== undefined ? { revision: String(revision) } : {}) });
  return new Map(res.kvs.map((kv) => [kv.key.subarray(prefix.length).toString('hex'), kv.value.toString('hex')]));
}

/** Every change event of a job's newest chain, in order (reads the repository). */
export async function chainEvents(store: ObjectStore, job: string): Promise<{ base: string; baseRevision: number; events: ChangeEvent[]; last: number }> {
  const bases = (await readCatalog(store, { job })).filter((m) => m.details['role'] === 'base');
  const base = bases.at(-1);
  if (!base) throw new Error(`job ${job} has no base`);
  const baseRevision = base.revision ?? base.raftIndex ?? 0;
  const segments = (await listSegments(store, job)).get(base.id) ?? [];
  const chain = readChain(store, chainPath(base.id, segments, baseRevision + 1), baseRevision);
  const events: ChangeEvent[] = [];
  for await (const event of chain.events) events.push(event);
  return { base: base.id, baseRevision, events, last: chain.end().revision };
}

/** `kvdr serve` with a config file written from `yaml`, output collected for failure messages. */
export async function startServe(configPath: string, yaml: string, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; output: () => string; exited: Promise<number | null> }> {
  await writeFile(configPath, yaml);
  const child = spawn(process.execPath, [`${PROJECT_ROOT}dist/cli/kvdr.js`, '--config', configPath, 'serve'], { env: { ...process.env, KVDR_LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  return { child, output: () => text, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
}

/** A Consul state: key (relative to the prefix) → value hex and flags. */
export type ConsulState = Map<string, string>;

/** The pairs under a prefix and the index Consul answered with, keys relative to the prefix. */
export async function consulStateNow(address: string, prefix: string): Promise<{ index: number; state: ConsulState }> {
  const response = await fetch(`${address}/v1/kv/${prefix}?recurse`);
  const index = Number(response.headers.get('x-consul-index'));
  if (response.status === 404) return { index, state: new Map() };
  const pairs = (await response.json()) as { Key: string; Flags: number; Value: string | null }[];
  return { index, state: new Map(pairs.map((p) => [p.Key.slice(prefix.length), `${Buffer.from(p.Value ?? '', 'base64').toString('hex')}/${p.Flags}`])) };
}

/**
 * Random puts (with flags), overwrites, deletes and re-creates under a Consul prefix, one at a time,
 * each followed by a read of the prefix: the index it answers with is that change's, and the state is
 * what a blocking query at that index returns. Changes are spaced `gapMs` apart so that a blocking
 * query following them sees each one on its own (two changes between answers are coalesced).
 */
export async function randomConsulWrites(address: string, prefix: string, durationMs: number, gapMs = 100): Promise<{ index: number; state: ConsulState }[]> {
  const states: { index: number; state: ConsulState }[] = [];
  const live = new Set<number>();
  const end = Date.now() + durationMs;
  while (Date.now() < end) {
    const i = randomInt(30);
    const key = `${prefix}${i % 3 === 0 ? `dir/${i}/leaf` : `k${i}`}`;
    if (live.has(i) && randomInt(4) === 0) {
      const response = await fetch(`${address}/v1/kv/${key}`, { method: 'DELETE' });
      if (!response.ok) throw new Error(`DELETE ${key}: HTTP ${response.status}`);
      live.delete(i);
    } else {
      const value = randomInt(3) === 0 ? randomBytes(randomInt(0, 512)) : Buffer.from(`v${states.length}`);
      const response = await fetch(`${address}/v1/kv/${key}?flags=${randomInt(5)}`, { method: 'PUT', body: value });
      if (!response.ok) throw new Error(`PUT ${key}: HTTP ${response.status}`);
      live.add(i);
    }
    states.push(await consulStateNow(address, prefix));
    await new Promise((resolve) => setTimeout(resolve, gapMs));
  }
  return states;
}

import { createWriteStream } from 'node:fs';
import { open, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isContinuousJob, type KvdrConfig, type RepositoryConfig } from '../config/schema.js';
import type { ChangeEvent } from '../formats/change-segment.js';
import { consulExportWriter } from '../formats/consul-export.js';
import { EXPORT_FORMAT, EXPORT_VERSION, exportWriter } from '../formats/kvdr-export.js';
import type { KvRecord } from '../formats/record.js';
import { readChain, type ChainEnd, type ChainLimit } from '../repository/chain-reader.js';
import { chainPath, currentPath, goesOnPast, listSegments, segmentRetired, type ChainPath } from '../repository/chains.js';
import { oldestFirst, readCatalog } from '../repository/catalog.js';
import { baseRevision, isChainBase, type Manifest } from '../repository/manifest.js';
import type { ObjectStore } from '../repository/object-store.js';
import { openStore } from '../repository/open-store.js';
import { IntegrityError, UsageError } from '../util/errors.js';
import { fetchVerified } from './fetch-backup.js';
import { describePoint, type PointInTime } from './point.js';
import type { LocalArtifact } from './artifact.js';
import { openArtifact } from './local-artifact.js';

export interface ChainSelector {
  job?: string;
  clusterId?: string;
  /** The point; absent: the end of the newest chain (every change it holds). */
  at?: PointInTime;
  /** --latest --before: the newest state at or before `at`, wherever the chain ends (no refusal past its end). */
  atMost?: boolean;
}

/** The chain a point-in-time restore replays: its base and the segments up to the point. */
export interface SelectedChain {
  base: Manifest;
  store: ObjectStore;
  repository: RepositoryConfig;
  path: ChainPath;
  limit: ChainLimit;
  atMost?: boolean;
}

/**
 * The newest chain whose base is at or before the point, across the repositories and the continuous
 * jobs named (`--job`) or of the cluster (`--cluster-id`). One catalog read and one segment listing
 * per job: no segment is read to choose.
 */
export async function selectChain(config: KvdrConfig, selector: ChainSelector): Promise<SelectedChain> {
  const jobs = config.jobs.filter(isContinuousJob).map((j) => j.name);
  if (selector.job !== undefined && !jobs.includes(selector.job) && selector.clusterId === undefined) {
    // A job no longer configured may still have chains; look for it anyway.
    jobs.push(selector.job);
  }
  const candidates: { base: Manifest; store: ObjectStore; repository: RepositoryConfig }[] = [];
  const stores: ObjectStore[] = [];
  for (const repository of config.repositories) {
    const store = openStore(repository);
    stores.push(store);
    for (const manifest of await readCatalog(store, selector.job ? { job: selector.job } : {})) {
      if (!isChainBase(manifest)) continue;
      if (selector.clusterId !== undefined && manifest.source.clusterId !== selector.clusterId) continue;
      if (selector.at && !before(manifest, selector.at)) continue;
      candidates.push({ base: manifest, store, repository });
    }
  }
  const chosen = candidates.sort((a, b) => oldestFirst(a.base, b.base)).at(-1);
  await Promise.all(stores.filter((s) => s !== chosen?.store).map((s) => s.close()));
  if (!chosen) {
    const which = selector.job ? `job ${selector.job}` : selector.clusterId ? `cluster ${selector.clusterId}` : 'any continuous job';
    throw new UsageError(`no continuous backup of ${which} has a base${selector.at ? ` at or before ${describePoint(selector.at)}` : ''}; see kvdr backups list --kind etcd-continuous (or consul-continuous)`);
  }
  const chains = await listSegments(chosen.store, chosen.base.job);
  // A base taken on its own (`kvdr backup` of a continuous job while `kvdr serve` follows the job's
  // chain) heads a chain nobody writes, and the followed chain goes on past it: that one holds the
  // changes after the base, so it is replayed (the newest such, of the same job and repository).
  const followed = candidates.filter((c) => c !== chosen && c.store === chosen.store && c.base.job === chosen.base.job && goesOnPast(chains.get(c.base.id) ?? [], chosen.base)).at(-1);
  const selected = followed ?? chosen;
  const from = baseRevision(selected.base) + 1;
  const segments = chains.get(selected.base.id) ?? [];
  const limit: ChainLimit = !selector.at ? {} : 'revision' in selector.at ? { revision: selector.at.revision } : { at: selector.at.time.getTime() };
  const path = chainPath(selected.base.id, segments, from);
  return { ...selected, path, limit, ...(selector.atMost ? { atMost: true } : {}) };
}

/** The newest durable point of any continuous job matching the filter, from catalogs and segment listings. */
export async function newestChainEnd(config: KvdrConfig, filter: { job?: string; clusterId?: string; before?: Date }): Promise<{ job: string; base: string; durableAt: string } | undefined> {
  let best: { job: string; base: string; durableAt: string } | undefined;
  for (const repository of config.repositories) {
    const store = openStore(repository);
    try {
      const bases = (await readCatalog(store, filter.job ? { job: filter.job } : {})).filter(
        (m) => isChainBase(m) && (filter.clusterId === undefined || m.source.clusterId === filter.clusterId),
      );
      for (const job of new Set(bases.map((m) => m.job))) {
        const segments = await listSegments(store, job);
        for (const base of bases.filter((m) => m.job === job)) {
          // A merged segment's time is when it was merged, long after its changes; the tail is never merged.
          const last = Math.max(Date.parse(base.finishedAt), ...(segments.get(base.id) ?? []).filter((s) => !s.merged).map((s) => s.lastModified.getTime()));
          const durableAt = new Date(filter.before ? Math.min(last, filter.before.getTime()) : last).toISOString();
          if (filter.before && Date.parse(base.finishedAt) >= filter.before.getTime()) continue;
          if (!best || durableAt > best.durableAt) best = { job, base: base.id, durableAt };
        }
      }
    } finally {
      await store.close();
    }
  }
  return best;
}

function before(base: Manifest, at: PointInTime): boolean {
  return 'revision' in at ? baseRevision(base) <= at.revision : baseTime(base) <= at.time.getTime();
}

/**
 * The time from which a base's state can be restored: a base taken by a rebase holds the state as the
 * log stood when the old chain was cut (`details.pointAt`, where the old chain ends); any other, from when
 * it was finished (its revision was read at some moment before).
 */
function baseTime(base: Manifest): number {
  const point = base.details['pointAt'];
  return typeof point === 'string' ? Date.parse(point) : Date.parse(base.finishedAt);
}

/** One key's state after the chain's changes: a put (value kept in the values file) or a delete. */
interface Change {
  op: 'put' | 'del';
  offset: number;
  length: number;
  meta?: Omit<Extract<ChangeEvent, { op: 'put' }>, 'key' | 'value' | 'op' | 'at'>;
}

/**
 * Replays base + segments up to the point into one local artifact of the base's format (a kvdr export
 * for etcd, `consul kv export` JSON for Consul), which the restore engine then plans, guards and writes
 * like any other. Memory holds the keys that changed (each key once, with an offset into a values file
 * on disk), never the values: a long chain over a large scope costs disk, not memory.
 */
export async function materialise(selected: SelectedChain, dir?: string): Promise<{ artifact: LocalArtifact; end: ChainEnd; path: ChainPath; cleanup: () => Promise<void> }> {
  const work = dir ?? (await mkdtemp(join(tmpdir(), 'kvdr-pitr-')));
  const cleanup = (): Promise<void> => rm(work, { recursive: true, force: true });
  try {
    const valuesPath = join(work, 'values');
    const { changes, end, path } = await replay(selected, valuesPath);
    checkCoverage({ ...selected, path }, end);

    const base = await fetchVerified({ manifest: selected.base, store: selected.store, repository: selected.repository });
    const out = join(work, 'state');
    try {
      const reader = openArtifact(base.artifact);
      const merged = mergeChanges(reader.records(), changes, valuesPath);
      const consul = selected.base.kind === 'consul-continuous';
      const writer = consul
        ? consulExportWriter()
        : exportWriter(() => ({
            format: EXPORT_FORMAT,
            version: EXPORT_VERSION,
            source: { type: 'etcd', ...(selected.base.source.clusterId ? { clusterId: selected.base.source.clusterId } : {}) },
            prefix: Buffer.from(selected.base.scope.prefix).toString('base64'),
            revision: end.revision,
            createdAt: new Date().toISOString(),
          }));
      await pipeline(Readable.from(merged), writer, createWriteStream(out, { mode: 0o600 }));
      await reader.close();
    } finally {
      await base.cleanup();
    }
    const artifact: LocalArtifact = {
      path: out,
      format: selected.base.kind === 'consul-continuous' ? 'consul-export' : 'etcd-export',
      compression: 'none',
      label: `job ${selected.base.job} at ${selected.base.kind === 'consul-continuous' ? 'index' : 'revision'} ${end.revision}`,
    };
    return { artifact, end, path, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * Replays the chain's changes up to the limit: each changed key once, its value in the values file.
 * A segment a merge retired since the listing sends the replay back, once, to a fresh listing, whose
 * path takes the merged segment in its place (see segmentRetired).
 */
async function replay(selected: SelectedChain, valuesPath: string): Promise<{ changes: Map<string, Change>; end: ChainEnd; path: ChainPath }> {
  try {
    return { ...(await replayPath(selected, selected.path, valuesPath)), path: selected.path };
  } catch (err) {
    if (!segmentRetired(err, selected.path)) throw err;
    const path = await currentPath(selected.store, selected.base.job, selected.base.id, baseRevision(selected.base) + 1);
    return { ...(await replayPath(selected, path, valuesPath)), path };
  }
}

async function replayPath(selected: SelectedChain, path: ChainPath, valuesPath: string): Promise<{ changes: Map<string, Change>; end: ChainEnd }> {
  const changes = new Map<string, Change>();
  const values = createWriteStream(valuesPath);
  let offset = 0;
  try {
    const chain = readChain(selected.store, path, baseRevision(selected.base), selected.limit);
    for await (const event of chain.events) {
      const key = event.key.toString('latin1'); // one char per byte: string order is byte order
      if (event.op === 'del') {
        changes.set(key, { op: 'del', offset: 0, length: 0 });
        continue;
      }
      if (!values.write(event.value)) await new Promise<void>((resolve) => values.once('drain', () => resolve()));
      const { revision, createRevision, version, lease, flags } = event;
      changes.set(key, { op: 'put', offset, length: event.value.length, meta: { revision, createRevision, version, lease, ...(flags !== undefined ? { flags } : {}) } });
      offset += event.value.length;
    }
    return { changes, end: chain.end() };
  } finally {
    await new Promise<void>((resolve, reject) => values.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}

/** A point past what the chain holds cannot be restored: say what the newest point is. */
function checkCoverage(selected: SelectedChain, end: ChainEnd): void {
  // Segments past a missing one cannot be replayed: a point beyond the break is damage, not a usage error.
  const stranded = selected.path.stranded[0];
  if (!end.limited && stranded) {
    throw new IntegrityError(`job ${selected.base.job}: the chain of base ${selected.base.id} is broken after revision ${end.revision} (segment ${stranded.key} does not follow); restore to rev:${end.revision} or earlier, or from another chain`);
  }
  if (end.limited || selected.atMost) return;
  const { limit } = selected;
  const reached = `the newest recovery point of that chain (base ${selected.base.id}) is revision ${end.revision}${end.durableAt ? ` (${end.durableAt})` : ''}`;
  if (limit.revision !== undefined && end.revision < limit.revision) {
    throw new UsageError(`revision ${limit.revision} is past what job ${selected.base.job} holds: ${reached}; it may fall in a continuity gap (kvdr audit lists gaps). Choose --at rev:${end.revision} or an earlier point`);
  }
  if (limit.at !== undefined) {
    const durable = end.durableAt ? Date.parse(end.durableAt) : Date.parse(selected.base.finishedAt);
    if (durable < limit.at) {
      throw new UsageError(`${new Date(limit.at).toISOString()} is past what job ${selected.base.job} holds: ${reached}. Choose --at rev:${end.revision} or an earlier time`);
    }
  }
}

/** Base records (ascending) merged with the final state of every changed key, ascending. */
async function* mergeChanges(base: AsyncIterable<KvRecord>, changes: Map<string, Change>, valuesPath: string): AsyncIterable<KvRecord> {
  const keys = [...changes.keys()].sort();
  const values = await open(valuesPath, 'r');
  let i = 0;
  const changed = async (key: string): Promise<KvRecord | undefined> => {
    const change = changes.get(key) as Change;
    if (change.op === 'del') return undefined;
    const value = Buffer.alloc(change.length);
    if (change.length > 0) await values.read(value, 0, change.length, change.offset);
    const meta = change.meta;
    return {
      key: Buffer.from(key, 'latin1'),
      value,
      lease: meta?.lease ?? '0',
      createRevision: meta?.createRevision ?? 0,
      modRevision: meta?.revision ?? 0,
      version: meta?.version ?? 0,
      ...(meta?.flags !== undefined ? { flags: meta.flags } : {}),
    };
  };
  try {
    let previous: string | undefined;
    for await (const record of base) {
      const key = record.key.toString('latin1');
      if (previous !== undefined && key <= previous) throw new IntegrityError(`the base's keys are not in ascending order at ${JSON.stringify(key.slice(0, 80))}; the base is damaged`);
      previous = key;
      while (i < keys.length && (keys[i] as string) < key) {
        const out = await changed(keys[i++] as string);
        if (out) yield out;
      }
      if (i < keys.length && keys[i] === key) {
        const out = await changed(keys[i++] as string);
        if (out) yield out;
        continue;
      }
      yield record;
    }
    while (i < keys.length) {
      const out = await changed(keys[i++] as string);
      if (out) yield out;
    }
  } finally {
    await values.close();
  }
}

import { appendAuditEvent } from '../audit/audit-log.js';
import { auditRepository } from '../audit/audit-repository.js';
import type { KvdrConfig } from '../config/schema.js';
import type { Logger } from '../util/logger.js';
import { readCatalog } from './catalog.js';
import { goesOnPast, listSegments } from './chains.js';
import { DATA, manifestKey, parseSegmentKey, SEGMENTS, segmentPrefix } from './layout.js';
import { isChainBase, type Manifest } from './manifest.js';
import type { ObjectStore } from './object-store.js';
import { openStore } from './open-store.js';
import { planRetention } from './retention.js';

export interface PruneOptions {
  config: KvdrConfig;
  logger: Logger;
  dryRun: boolean;
  /** @defaultValue () => new Date() */
  now?: () => Date;
  /**
   * An artifact without a manifest is an interrupted backup; it is removed once this old, so that a
   * backup still uploading is never mistaken for one.
   * @defaultValue 24
   */
  orphanGraceHours?: number;
}

export interface PruneResult {
  deleted: { id: string; job: string; repository: string; reasons: string[] }[];
  orphans: { key: string; repository: string }[];
  kept: number;
}

/**
 * Applies each job's retention to its repository (invariant 3: only prune deletes). A backup goes
 * manifest first, then artifact, so an interruption leaves an orphan rather than a manifest that points
 * at nothing. Jobs no longer configured and safety backups are left alone. Every deletion is an audit
 * event, appended before the delete: a trail that cannot be written stops the prune, so nothing is
 * ever deleted unrecorded (a delete that then fails is retried by the next prune). In a versioned bucket a delete leaves a delete marker; expiring old versions is the bucket's
 * lifecycle rule's job.
 */
export async function prune(options: PruneOptions): Promise<PruneResult> {
  const { config, dryRun } = options;
  const now = (options.now ?? (() => new Date()))();
  const grace = (options.orphanGraceHours ?? 24) * 3_600_000;
  const result: PruneResult = { deleted: [], orphans: [], kept: 0 };
  const trail = dryRun ? undefined : openStore(auditRepository(config));
  try {
    await pruneRepositories(options, now, grace, result, trail);
  } finally {
    await trail?.close();
  }
  return result;
}

async function pruneRepositories(options: PruneOptions, now: Date, grace: number, result: PruneResult, trail: ObjectStore | undefined): Promise<void> {
  const { config, logger } = options;
  for (const repository of config.repositories) {
    const store = openStore(repository);
    try {
      const catalog = await readCatalog(store);
      const referenced = new Set(catalog.map((m) => m.repository.key));
      const byJob = new Map<string, Manifest[]>();
      for (const m of catalog) byJob.set(m.job, [...(byJob.get(m.job) ?? []), m]);
      for (const job of config.jobs.filter((j) => j.repository === repository.name)) {
        const manifests = byJob.get(job.name) ?? [];
        const live = await liveChains(store, job.name, manifests);
        for (const decision of planRetention(manifests, job.retention, now)) {
          if (decision.keep) {
            result.kept++;
            continue;
          }
          if (live.has(decision.manifest.id)) {
            result.kept++;
            logger.info({ backup: decision.manifest.id, job: job.name }, `kept ${decision.manifest.id} past its retention: its chain is still being written, past the job's newest base`);
            continue;
          }
          const m = decision.manifest;
          result.deleted.push({ id: m.id, job: m.job, repository: repository.name, reasons: decision.reasons });
          if (!trail) continue;
          // A continuous job's base goes with its whole chain: its segments restore nothing without it.
          const segments = await chainKeys(store, m);
          await appendAuditEvent(trail, 'prune', { backup: m.id, job: m.job, repository: repository.name, key: m.repository.key, finishedAt: m.finishedAt, minDays: job.retention.minDays, ...(m.objectLock ? { retainUntil: m.objectLock.retainUntil } : {}), ...(segments.length > 0 ? { segments: segments.length } : {}), reasons: decision.reasons });
          await store.delete(manifestKey(m.job, m.id));
          await store.delete(m.repository.key);
          for (const key of segments) await store.delete(key);
          logger.info({ backup: m.id, job: m.job }, `pruned ${m.id}`);
        }
      }
      // Segments of a chain whose base is gone (a prune interrupted between its deletes): nothing can replay them.
      const bases = new Set(catalog.map((m) => `${m.job}/${m.id}`));
      for await (const info of store.list(SEGMENTS)) {
        const segment = parseSegmentKey(info.key);
        if (!segment || bases.has(`${segment.job}/${segment.base}`) || now.getTime() - info.lastModified.getTime() < grace) continue;
        result.orphans.push({ key: info.key, repository: repository.name });
        if (!trail) continue;
        await appendAuditEvent(trail, 'prune', { orphan: info.key, repository: repository.name, lastModified: info.lastModified.toISOString(), reasons: ['change segment without its base'] });
        await store.delete(info.key);
      }
      for await (const info of store.list(DATA)) {
        if (referenced.has(info.key) || now.getTime() - info.lastModified.getTime() < grace) continue;
        result.orphans.push({ key: info.key, repository: repository.name });
        if (!trail) continue;
        await appendAuditEvent(trail, 'prune', { orphan: info.key, repository: repository.name, lastModified: info.lastModified.toISOString(), reasons: ['artifact without a manifest'] });
        await store.delete(info.key);
      }
    } finally {
      await store.close();
    }
  }
}

/**
 * The bases of a continuous job whose chains are still being written past the job's newest base (see
 * goesOnPast). A rebase ends the old chain exactly at the new base's revision, so an ended chain never
 * is; a base taken on its own (`kvdr backup` of the job while `kvdr serve` follows it) leaves the
 * followed chain running past it, and retention that counts bases would otherwise delete the chain
 * being written, segments and all. `manifests` are oldest first, as the catalog gives them.
 */
async function liveChains(store: ObjectStore, job: string, manifests: readonly Manifest[]): Promise<Set<string>> {
  const newest = manifests.filter(isChainBase).at(-1);
  if (!newest) return new Set();
  const live = new Set<string>();
  for (const [base, segments] of await listSegments(store, job)) {
    if (base !== newest.id && goesOnPast(segments, newest)) live.add(base);
  }
  return live;
}

/** The segment keys of a continuous job's chain (none for other backups). */
async function chainKeys(store: ObjectStore, manifest: Manifest): Promise<string[]> {
  if (!isChainBase(manifest)) return [];
  const keys: string[] = [];
  for await (const info of store.list(segmentPrefix(manifest.job, manifest.id))) keys.push(info.key);
  return keys;
}

import { recordAuditEvent } from '../audit/audit-repository.js';
import type { KvdrConfig } from '../config/schema.js';
import type { Logger } from '../util/logger.js';
import { readCatalog } from './catalog.js';
import { DATA, manifestKey } from './layout.js';
import type { Manifest } from './manifest.js';
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
 * event. In a versioned bucket a delete leaves a delete marker; expiring old versions is the bucket's
 * lifecycle rule's job.
 */
export async function prune(options: PruneOptions): Promise<PruneResult> {
  const { config, logger, dryRun } = options;
  const now = (options.now ?? (() => new Date()))();
  const grace = (options.orphanGraceHours ?? 24) * 3_600_000;
  const result: PruneResult = { deleted: [], orphans: [], kept: 0 };
  for (const repository of config.repositories) {
    const store = openStore(repository);
    try {
      const catalog = await readCatalog(store);
      const referenced = new Set(catalog.map((m) => m.repository.key));
      const byJob = new Map<string, Manifest[]>();
      for (const m of catalog) byJob.set(m.job, [...(byJob.get(m.job) ?? []), m]);
      for (const job of config.jobs.filter((j) => j.repository === repository.name)) {
        for (const decision of planRetention(byJob.get(job.name) ?? [], job.retention, now)) {
          if (decision.keep) {
            result.kept++;
            continue;
          }
          const m = decision.manifest;
          result.deleted.push({ id: m.id, job: m.job, repository: repository.name, reasons: decision.reasons });
          if (dryRun) continue;
          await store.delete(manifestKey(m.job, m.id));
          await store.delete(m.repository.key);
          await recordAuditEvent(config, 'prune', { backup: m.id, job: m.job, repository: repository.name, key: m.repository.key, finishedAt: m.finishedAt, minDays: job.retention.minDays, ...(m.objectLock ? { retainUntil: m.objectLock.retainUntil } : {}), reasons: decision.reasons }, logger);
          logger.info({ backup: m.id, job: m.job }, `pruned ${m.id}`);
        }
      }
      for await (const info of store.list(DATA)) {
        if (referenced.has(info.key) || now.getTime() - info.lastModified.getTime() < grace) continue;
        result.orphans.push({ key: info.key, repository: repository.name });
        if (dryRun) continue;
        await store.delete(info.key);
        await recordAuditEvent(config, 'prune', { orphan: info.key, repository: repository.name, lastModified: info.lastModified.toISOString(), reasons: ['artifact without a manifest'] }, logger);
      }
    } finally {
      await store.close();
    }
  }
  return result;
}

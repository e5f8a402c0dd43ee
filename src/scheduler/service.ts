import { isContinuousJob, type JobConfig, type KvdrConfig } from '../config/schema.js';
import { readCatalog } from '../repository/catalog.js';
import { openStore } from '../repository/open-store.js';
import { prune } from '../repository/prune.js';
import { oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { incompleteCollection, runJob } from './run-job.js';
import type { AuditEvent } from '../audit/audit-log.js';
import { LatestInTrail } from '../audit/latest-in-trail.js';
import { auditRepository } from '../audit/audit-repository.js';
import type { ContinuousSupervisor } from './continuous-supervisor.js';
import { DumpWatcher } from './dump-watcher.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';

export interface ServiceHooks {
  /** Told when retention after a successful run fails (the run still counts as a success). */
  onPruneFailure?: (job: string) => void;
  /** The continuous jobs this replica follows: a scheduled run of one of them takes its next base. */
  continuous?: ContinuousSupervisor;
}

/** The scheduler wired to the real backup jobs: run the job, then apply that job's retention. */
export function backupScheduler(config: KvdrConfig, logger: Logger, overrides: Partial<SchedulerOptions> = {}, hooks: ServiceHooks = {}): Scheduler {
  return new Scheduler({
    config,
    logger,
    runJob: async (job, signal, run) => {
      // A continuous job resumes its chain (or takes its first base) when it starts following: no catch-up base.
      if (run.trigger === 'catch-up' && hooks.continuous && isContinuousJob(job)) return {};
      // A continuous job followed here starts its new chain where its change log stands (no window between chains).
      const rebased = hooks.continuous?.following(job.name) ? await hooks.continuous.rebase(job.name) : undefined;
      if (rebased) {
        await applyRetention(config, job, logger, hooks);
        return { bytes: rebased.bytes.stored };
      }
      const outcome = await runJob({ config, job: job.name, logger, signal, run });
      if (outcome.kind === 'restore-test' || outcome.kind === 'verify') return {};
      // px-dumps runs on every replica; one pruning (and auditing each deletion) is enough.
      if (overrides.leadership?.isLeader() ?? true) await applyRetention(config, job, logger, hooks);
      if (outcome.kind === 'px-dumps') {
        const incomplete = incompleteCollection(outcome.collected);
        if (incomplete) throw incomplete;
      }
      return { bytes: outcome.manifests.reduce((sum, m) => sum + m.bytes.stored, 0) };
    },
    lastSuccess: lastSuccessReader(config),
    ...overrides,
  });
}

/**
 * Never throws: the backup is stored and listed, so a failed prune must not fail the run — that would
 * retry it and store the same data again. The next run prunes what this one could not.
 */
async function applyRetention(config: KvdrConfig, job: JobConfig, logger: Logger, hooks: ServiceHooks): Promise<void> {
  try {
    await prune({ config: { ...config, jobs: [job] }, logger, dryRun: false });
  } catch (err) {
    logger.error({ job: job.name }, `${job.name}: retention failed (${oneLine(err)}); the backup is kept and the next run prunes again`);
    hooks.onPruneFailure?.(job.name);
  }
}

/**
 * Where each job's last success is recorded: backups in their repository's catalog; drills and verify
 * runs, which leave no backups behind, in the audit trail (followed incrementally, see LatestInTrail).
 */
function lastSuccessReader(config: KvdrConfig): (job: JobConfig) => Promise<Date | undefined> {
  const trails = new Map<string, LatestInTrail>();
  const inTrail = async (job: JobConfig, matches: (event: AuditEvent) => boolean): Promise<Date | undefined> => {
    let latest = trails.get(job.name);
    if (!latest) trails.set(job.name, (latest = new LatestInTrail(matches)));
    const store = openStore(auditRepository(config));
    try {
      return await latest.refresh(store);
    } finally {
      await store.close();
    }
  };
  return async (job) => {
    if (job.kind === 'restore-test') return inTrail(job, (e) => e.type === 'drill' && e.subject['drill'] === job.name && e.subject['result'] === 'ok');
    if (job.kind === 'verify') return inTrail(job, (e) => e.type === 'verify' && e.subject['verifyJob'] === job.name && typeof e.subject['checked'] === 'number' && e.subject['result'] === 'ok');
    const repository = config.repositories.find((r) => r.name === job.repository);
    if (!repository) return undefined;
    const store = openStore(repository);
    try {
      const newest = (await readCatalog(store, { job: job.name })).at(-1);
      return newest ? new Date(newest.finishedAt) : undefined;
    } finally {
      await store.close();
    }
  };
}

/** Collects PX dumps as soon as they settle (see DumpWatcher), on every replica: each sees its own node's dumps. */
export function watchDumps(config: KvdrConfig, scheduler: Scheduler, logger: Logger): { close(): void } {
  const watchers = config.jobs
    .filter((job) => job.kind === 'px-dumps')
    .map((job) => {
      const watcher = new DumpWatcher({
        dirs: config.pxDumps.dirs,
        stableMs: config.pxDumps.stableSeconds * 1000,
        logger,
        // A run already going: tried again once it has settled anew.
        collect: () => scheduler.trigger(job.name, 'watch') !== undefined,
      });
      watcher.start();
      return watcher;
    });
  return {
    close: () => {
      for (const watcher of watchers) watcher.close();
    },
  };
}

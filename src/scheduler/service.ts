import { collectPxDumps } from '../backup/collect-px-dumps.js';
import { runBackup } from '../backup/run-backup.js';
import type { JobConfig, KvdrConfig } from '../config/schema.js';
import { readCatalog } from '../repository/catalog.js';
import { openStore } from '../repository/open-store.js';
import { prune } from '../repository/prune.js';
import type { Logger } from '../util/logger.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';

/** The scheduler wired to the real backup jobs: run the job, then apply that job's retention. */
export function backupScheduler(config: KvdrConfig, logger: Logger, overrides: Partial<SchedulerOptions> = {}): Scheduler {
  return new Scheduler({
    config,
    logger,
    runJob: async (job, signal, run) => {
      let bytes: number;
      if (job.kind === 'px-dumps') {
        const collected = await collectPxDumps({ config, job: job.name, logger });
        bytes = collected.stored.reduce((sum, m) => sum + m.bytes.stored, 0);
      } else {
        bytes = (await runBackup({ config, job: job.name, logger, signal, details: { ...run } })).bytes.stored;
      }
      await prune({ config: { ...config, jobs: [job] }, logger, dryRun: false });
      return { bytes };
    },
    lastSuccess: (job) => lastSuccess(config, job),
    ...overrides,
  });
}

async function lastSuccess(config: KvdrConfig, job: JobConfig): Promise<Date | undefined> {
  const repository = config.repositories.find((r) => r.name === job.repository);
  if (!repository) return undefined;
  const store = openStore(repository);
  try {
    const newest = (await readCatalog(store, { job: job.name })).at(-1);
    return newest ? new Date(newest.finishedAt) : undefined;
  } finally {
    await store.close();
  }
}

import { randomBytes } from 'node:crypto';
import { recordAuditEvent } from '../audit/audit-repository.js';
import type { JobConfig, KvdrConfig, SourceConfig } from '../config/schema.js';
import { oneLine, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { restore } from './engine.js';
import { restoreRepository, targetFor } from './restore-context.js';

export interface RestoreDrillOptions {
  config: KvdrConfig;
  /** A job of kind restore-test. */
  job: JobConfig;
  logger: Logger;
  /** @defaultValue () => new Date() */
  now?: () => Date;
  /** Aborting stops the drill between its steps; what it wrote is cleaned up as on any failure. */
  signal?: AbortSignal;
}

/** What a drill proved, and how long recovery took: the RTO evidence. */
export interface DrillResult {
  drill: string;
  testedJob: string;
  backup: string;
  backupFinishedAt: string;
  target: string;
  scope: string;
  records: number;
  digest: string;
  /** Download and hash check of the artifact. */
  fetchMs: number;
  /** From the start of the drill until the restored keys were read back and matched. */
  rtoMs: number;
  cleanedUp: boolean;
}

/**
 * A restore drill: restores the latest backup of the tested job into a scratch place — a separate
 * cluster, or a fresh `<toPrefix><run id>/` — exactly as an operator would, then reads it back (count
 * and digest), times it, and deletes what it wrote. The scratch scope must be empty: a drill never
 * forces, so it cannot destroy anything. Success and failure are both audit events.
 */
export async function runRestoreDrill(options: RestoreDrillOptions): Promise<DrillResult> {
  const { config, job, logger } = options;
  const now = options.now ?? (() => new Date());
  const drill = job.drill;
  if (!drill) throw new UsageError(`job ${job.name} is not a restore-test job`);
  const targetSource = config.sources.find((s) => s.name === job.source) as SourceConfig;
  const started = now();
  const subject: Record<string, unknown> = { drill: job.name, testedJob: drill.job, target: targetSource.name, startedAt: started.toISOString() };
  const elapsed = (): number => now().getTime() - started.getTime();
  try {
    const result = await drillOnce(options, targetSource, started, elapsed, subject);
    await recordAuditEvent(config, 'drill', { ...subject, ...result, result: 'ok' }, logger);
    logger.info({ drill: job.name, backup: result.backup, rtoMs: result.rtoMs }, `drill restored ${result.records} keys of ${result.backup} in ${(result.rtoMs / 1000).toFixed(1)}s and cleaned up`);
    return result;
  } catch (err) {
    await recordAuditEvent(config, 'drill', { ...subject, result: 'failed', error: oneLine(err), durationMs: elapsed() }, logger);
    throw err;
  }
}

async function drillOnce(
  options: RestoreDrillOptions,
  targetSource: SourceConfig,
  started: Date,
  elapsed: () => number,
  subject: Record<string, unknown>,
): Promise<DrillResult> {
  const { config, job, logger } = options;
  const drill = job.drill as NonNullable<JobConfig['drill']>;
  const runId = `${started.toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
  // A fresh scratch scope each run; without toPrefix the drill's target is a separate cluster, at the backup's own scope.
  const toPrefix = drill.toPrefix === undefined ? undefined : `${drill.toPrefix}${runId}/`;
  const target = targetFor(targetSource);
  const repository = restoreRepository(config);
  let scope: string | undefined;
  try {
    // A drill never forces: it cannot destroy anything, and a scratch scope that holds keys stops it (exit 3).
    const restored = await restore({
      input: { from: 'repository', config, selector: { latest: true, job: drill.job } },
      target,
      targetSource,
      scope: toPrefix === undefined ? {} : { toPrefix },
      force: false,
      dryRun: false,
      safetyBackup: false,
      repository,
      logger,
      print: () => undefined,
      caller: { drill: job.name },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    scope = restored.scope;
    subject['backup'] = restored.input.backup;
    subject['scope'] = scope;
    const rtoMs = elapsed();
    await target.deleteScope(Buffer.from(scope));
    const backup = restored.input.backup as string;
    return {
      drill: job.name,
      testedJob: drill.job,
      backup,
      backupFinishedAt: restored.input.takenAt ?? '',
      target: target.description,
      scope,
      records: restored.written,
      digest: restored.plan?.digest ?? '',
      fetchMs: restored.timings.fetchMs,
      rtoMs,
      cleanedUp: true,
    };
  } finally {
    await target.close();
    await repository.store.close();
  }
}


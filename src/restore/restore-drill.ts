import { randomBytes } from 'node:crypto';
import { recordAuditEvent } from '../audit/audit-repository.js';
import type { JobConfig, KvdrConfig, SourceConfig } from '../config/schema.js';
import { oneLine, ScopeNotEmptyError, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { fetchVerified, selectBackup } from './fetch-backup.js';
import { restoreRepository, targetFor } from './restore-context.js';
import { runRestore } from './run-restore.js';

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
  const selected = await selectBackup(config, { latest: true, job: drill.job });
  const { manifest } = selected;
  subject['backup'] = manifest.id;
  const target = targetFor(targetSource);
  const repository = restoreRepository(config);
  try {
    options.signal?.throwIfAborted();
    const { artifact, cleanup } = await fetchVerified(selected);
    const fetchMs = elapsed();
    try {
      options.signal?.throwIfAborted();
      const pxDump = artifact.format === 'px-dump';
      const clusterId = manifest.source.clusterId;
      if (pxDump && !clusterId) throw new UsageError(`backup ${manifest.id} is a PX dump of an unknown cluster; set pxDumps.clusterId`);
      const base = pxDump ? `pwx/${clusterId as string}/` : manifest.scope.prefix;
      const runId = `${started.toISOString().replace(/[-:.]/g, '')}-${randomBytes(3).toString('hex')}`;
      const toPrefix = drill.toPrefix === undefined ? undefined : `${drill.toPrefix}${runId}/`;
      const scope = Buffer.from(toPrefix ?? base);
      subject['scope'] = scope.toString('utf8');
      const before = await target.inspectScope(scope);
      if (before.count > 0) {
        throw new ScopeNotEmptyError(
          `${target.description}: the drill's scratch scope "${scope.toString('utf8')}" already holds ${before.count} keys (e.g. ${before.examples.join(', ')}); a drill never overwrites: empty it or point the drill elsewhere`,
        );
      }
      let cleanedUp = false;
      try {
        const restored = await runRestore({
          artifact,
          base,
          relativeKeys: pxDump,
          ...(toPrefix !== undefined ? { toPrefix } : {}),
          target,
          targetSource,
          force: false,
          dryRun: false,
          safetyBackup: false,
          repository,
          logger,
          print: () => undefined,
          origin: { drill: job.name, backup: manifest.id, job: manifest.job, kind: manifest.kind, repository: manifest.repository.name },
        });
        const rtoMs = elapsed();
        await target.deleteScope(scope);
        cleanedUp = true;
        return {
          drill: job.name,
          testedJob: drill.job,
          backup: manifest.id,
          backupFinishedAt: manifest.finishedAt,
          target: target.description,
          scope: scope.toString('utf8'),
          records: restored.written,
          digest: restored.plan.digest,
          fetchMs,
          rtoMs,
          cleanedUp,
        };
      } finally {
        // The scope was empty before: whatever is there now, the drill wrote.
        if (!cleanedUp) await target.deleteScope(scope).catch((err: unknown) => logger.error({ err }, `drill could not clean up "${scope.toString('utf8')}": ${oneLine(err)}`));
      }
    } finally {
      await cleanup();
    }
  } finally {
    await target.close();
    await repository.store.close();
    await selected.store.close();
  }
}

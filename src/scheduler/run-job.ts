import { recordAuditEvent } from '../audit/audit-repository.js';
import type { CollectResult } from '../backup/collect-px-dumps.js';
import { findJob, runBackup } from '../backup/run-backup.js';
import type { KvdrConfig } from '../config/schema.js';
import type { Manifest } from '../repository/manifest.js';
import type { VerifyResult } from '../repository/verify-backup.js';
import type { DrillResult } from '../restore/restore-drill.js';
import { KvdrError, oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

export interface RunJobOptions {
  config: KvdrConfig;
  job: string;
  logger: Logger;
  signal?: AbortSignal;
  /** What started the run (schedule, catch-up, manual) and its cron slot: kept in manifests and the trail. */
  run?: { trigger: string; slot?: string };
}

export type JobOutcome =
  | { kind: 'backup'; manifests: Manifest[] }
  | { kind: 'px-dumps'; manifests: Manifest[]; collected: CollectResult }
  | { kind: 'restore-test'; drill: DrillResult }
  | { kind: 'verify'; results: VerifyResult[] };

/**
 * Runs one configured job of any kind, from the scheduler or `kvdr backup`, and records it in the
 * audit trail: one backup event per stored backup, one backup-failed event when the run fails (drills
 * and verify runs record their own). The trail is what the audit counts runs, failures and deletions from.
 */
export async function runJob(options: RunJobOptions): Promise<JobOutcome> {
  const { config, logger } = options;
  const job = findJob(config, options.job);
  const run = options.run ?? { trigger: 'manual' };
  const signal = options.signal ? { signal: options.signal } : {};
  // Drills, verify runs and dump collection load their code when a job of their kind runs (a backup process stays lean).
  if (job.kind === 'restore-test') {
    const { runRestoreDrill } = await import('../restore/restore-drill.js');
    return { kind: 'restore-test', drill: await runRestoreDrill({ config, job, logger, ...signal }) };
  }
  if (job.kind === 'verify') {
    const { assertVerified, verifyBackups } = await import('../audit/verify-backups.js');
    const results = await verifyBackups(config, job.verify?.all ? { all: true } : { sample: job.verify?.sample ?? 3 }, logger, { verifyJob: job.name, ...run });
    // One event for the run as a whole (no backup named, so the INTEGRITY control reads past it): what
    // the job's last success is taken from, since a failed run records checks that passed too.
    const failed = results.filter((r) => r.result !== 'ok').length;
    await recordAuditEvent(config, 'verify', { verifyJob: job.name, checked: results.length, failed, result: failed === 0 ? 'ok' : 'failed', ...run }, logger);
    assertVerified(results);
    return { kind: 'verify', results };
  }
  const startedAt = new Date().toISOString();
  try {
    if (job.kind === 'px-dumps') {
      const { collectPxDumps } = await import('../backup/collect-px-dumps.js');
      const collected = await collectPxDumps({ config, job: job.name, logger, details: { ...run }, ...signal });
      await recordBackups(config, collected.stored, run, logger);
      const incomplete = incompleteCollection(collected);
      if (incomplete) await recordAuditEvent(config, 'backup-failed', { job: job.name, kind: job.kind, repository: job.repository, ...run, startedAt, error: incomplete.message }, logger);
      return { kind: 'px-dumps', manifests: collected.stored, collected };
    }
    const manifest = await runBackup({ config, job: job.name, logger, details: { ...run }, ...signal });
    await recordBackups(config, [manifest], run, logger);
    return { kind: 'backup', manifests: [manifest] };
  } catch (err) {
    await recordAuditEvent(config, 'backup-failed', { job: job.name, kind: job.kind, repository: job.repository, ...run, startedAt, error: oneLine(err) }, logger);
    throw err;
  }
}

/**
 * The failure of a px-dumps run that could not read or store some dumps, or undefined. The run returns
 * what it stored rather than throwing, so that its caller still applies retention and prints the ids,
 * and then fails with this: a dump that never reads (a truncated file) must not stop pruning forever.
 */
export function incompleteCollection(collected: CollectResult): KvdrError | undefined {
  const [first] = collected.failed;
  if (!first) return undefined;
  return new KvdrError(
    `${collected.failed.length} PX dump(s) could not be collected (${first.file}: ${first.error}); ${collected.stored.length} others were stored, and the next run tries again`,
  );
}

async function recordBackups(config: KvdrConfig, manifests: readonly Manifest[], run: RunJobOptions['run'], logger: Logger): Promise<void> {
  for (const m of manifests) await recordAuditEvent(config, 'backup', backupEventSubject(m, run), logger);
}

/** What the trail keeps of a backup: enough to notice later if it disappears before its time. */
export function backupEventSubject(m: Manifest, run: RunJobOptions['run']): Record<string, unknown> {
  return {
    backup: m.id,
    job: m.job,
    kind: m.kind,
    repository: m.repository.name,
    key: m.repository.key,
    sha256: m.sha256,
    bytes: m.bytes.stored,
    ...(m.records !== undefined ? { records: m.records } : {}),
    startedAt: m.startedAt,
    finishedAt: m.finishedAt,
    ...run,
  };
}

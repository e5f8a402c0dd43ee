import type { AuditEventType } from '../audit/audit-log.js';
import { appendOrReport } from '../audit/audit-repository.js';
import { takeBackup } from '../backup/run-backup.js';
import type { RepositoryConfig, SourceConfig } from '../config/schema.js';
import { SetDigest } from '../formats/set-digest.js';
import type { ObjectStore } from '../repository/object-store.js';
import type { KvTarget } from '../sources/kv-target.js';
import { IntegrityError, KvdrError, oneLine, ScopeNotEmptyError, UsageError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { progress } from '../util/progress.js';
import { KeyScope } from './key-scope.js';
import { openArtifact, type LocalArtifact } from './local-artifact.js';
import { otherPaths, planRestore, TopLevelCounts, type RestorePlan } from './plan.js';
import { replay, ReplayError } from './replay.js';

/** The repository a restore keeps its safety backup and audit events in. */
export interface RestoreRepository {
  store: ObjectStore;
  config: RepositoryConfig;
}

export interface RestoreRequest {
  artifact: LocalArtifact;
  /** Where the artifact's keys live (`pwx/<id>/` for a PX dump, the backup's scope otherwise). */
  base: string;
  /** PX dump keys are relative to `base`; other artifacts hold whole keys. */
  relativeKeys: boolean;
  prefix?: string;
  toPrefix?: string;
  target: KvTarget;
  /** How to reach the target for its safety backup (same credentials). */
  targetSource: SourceConfig;
  force: boolean;
  dryRun: boolean;
  safetyBackup: boolean;
  repository?: RestoreRepository;
  logger: Logger;
  print: (text: string) => void;
  /** What was restored, for the audit trail: backup id, file, cluster id. */
  origin: Record<string, unknown>;
}

export interface RestoreResult {
  plan: RestorePlan;
  existing: number;
  deleted: number;
  written: number;
  safetyBackupId?: string;
  dryRun: boolean;
}

/**
 * The restore rules (DESIGN.md invariant 5), in order: read the whole artifact first (a damaged one
 * fails before any write); count the keys in the scope; keys found and no --force: stop, write nothing;
 * with --force: safety backup of the scope, delete it, replay in transactions, verify count and digest.
 * Keys outside the scope are never touched. Every outcome, failures included, is an audit event.
 */
export async function runRestore(request: RestoreRequest): Promise<RestoreResult> {
  const { target, logger } = request;
  const prefix = request.prefix === undefined ? undefined : relativePrefix(request, request.prefix);
  // PX dump keys are relative: they land under pwx/<id>/ (plus --prefix) unless --to-prefix says otherwise.
  const toPrefix = request.toPrefix ?? (request.relativeKeys ? request.base + (prefix ?? '') : undefined);
  const keyScope = new KeyScope({
    base: request.relativeKeys ? '' : request.base,
    ...(prefix !== undefined ? { prefix } : {}),
    ...(toPrefix !== undefined ? { toPrefix } : {}),
  });
  const scope = keyScope.scope;
  const scopeText = scope.toString('utf8');
  const subject = { ...attemptSubject(request), scope: scopeText };

  let safetyBackupId: string | undefined;
  let deleted = 0;
  let written = 0;
  // One reader for both passes (plan, then replay): a gzipped snapshot is inflated and checked once.
  const reader = openArtifact(request.artifact);
  try {
    logger.info({ artifact: request.artifact.label, scope: scopeText }, 'checking the artifact');
    const plan = await planRestore(reader.records(keyScope.from), keyScope, target);
    const existing = await target.inspectScope(scope);
    if (plan.leased > 0) logger.warn({ leased: plan.leased }, `${plan.leased} keys had etcd leases; they are restored without a lease`);

    if (request.dryRun) {
      const toDelete = await topLevelCounts(target, keyScope);
      request.print(describePlan(plan, existing.count, toDelete, scopeText, target.description));
      await recordRestoreEvent(request, 'restore-dry-run', { ...subject, wouldDelete: existing.count, wouldWrite: plan.records });
      return { plan, existing: existing.count, deleted: 0, written: 0, dryRun: true };
    }

    if (existing.count > 0 && !request.force) {
      await recordRestoreEvent(request, 'restore-aborted', { ...subject, existing: existing.count, examples: existing.examples });
      throw alreadyRecorded(
        new ScopeNotEmptyError(
          `${target.description}: ${existing.count} keys already exist under "${scopeText}" (e.g. ${existing.examples.join(', ')}); ` +
            'nothing was written. Re-run with --force to delete them and restore (a safety backup of them is taken first)',
        ),
      );
    }

    // --prefix/--to-prefix are checked as flags; a backup's own scope comes from its source's config,
    // and deleting "pwx/c1" would take "pwx/c10/…" with it.
    if (existing.count > 0 && scopeText !== '' && !scopeText.endsWith('/')) {
      throw new UsageError(
        `the scope "${scopeText}" does not end with '/', so deleting it would also delete neighbouring keys such as "${scopeText}2/…"; nothing was written. Re-run with --prefix ${scopeText}/`,
      );
    }

    if (existing.count > 0 && request.safetyBackup) {
      if (!request.repository) {
        throw new UsageError('no repository to keep the safety backup in; configure one (--config) or pass --no-safety-backup');
      }
      const safety = await takeBackup({
        store: request.repository.store,
        repository: request.repository.config,
        job: 'safety-backup',
        kind: 'safety-backup',
        produce: request.targetSource.type === 'etcd' ? 'etcd-export' : 'consul-export',
        source: request.targetSource,
        scope: scopeText,
        compression: 'gzip',
        logger,
        details: { reason: 'restore --force', restoring: request.origin },
      });
      safetyBackupId = safety.id;
      logger.info({ backup: safety.id, keys: safety.records }, `safety backup of ${existing.count} keys taken: ${safety.id}`);
    }

    if (existing.count > 0) deleted = await target.deleteScope(scope);
    const bar = progress(`restoring into ${target.description}`, plan.records, logger);
    try {
      written = await replay(reader.records(keyScope.from), keyScope, target, plan.records, (n) => bar.update(n));
    } finally {
      bar.stop();
    }
    await verify(target, keyScope, plan);
    await recordRestoreEvent(request, 'restore', { ...subject, deleted, written, records: plan.records, digest: plan.digest, safetyBackupId });
    logger.info({ written, deleted, safetyBackupId }, `restored ${written} keys under "${scopeText}" into ${target.description}`);
    return { plan, existing: existing.count, deleted, written, dryRun: false, ...(safetyBackupId ? { safetyBackupId } : {}) };
  } catch (err) {
    const failedAfter = err instanceof ReplayError ? err.written : written;
    await recordRestoreFailure(request, { ...subject, deleted, written: failedAfter, safetyBackupId }, err);
    if (safetyBackupId && err instanceof Error) err.message += ` (the keys that were there are in safety backup ${safetyBackupId})`;
    throw err;
  } finally {
    await reader.close();
  }
}

/** Reads the scope back and compares it with what was meant to be written. */
async function verify(target: KvTarget, scope: KeyScope, plan: RestorePlan): Promise<void> {
  const digest = new SetDigest();
  for await (const record of target.read(scope.scope)) digest.add(record.key, record.value);
  if (digest.count !== plan.records || digest.digest() !== plan.digest) {
    throw new IntegrityError(
      `${target.description}: verification failed: the scope holds ${digest.count} keys, ${plan.records} were restored` +
        `${digest.count === plan.records ? ' with different contents' : ''}; something else wrote to it meanwhile, or the write was lost`,
    );
  }
}

async function topLevelCounts(target: KvTarget, scope: KeyScope): Promise<TopLevelCounts> {
  const counts = new TopLevelCounts();
  for await (const record of target.read(scope.scope)) counts.add(scope.topLevel(record.key));
  return counts;
}

function describePlan(plan: RestorePlan, existing: number, toDelete: TopLevelCounts, scope: string, target: string): string {
  const rows = (counts: TopLevelCounts): string => {
    const { rows: largest, others } = counts.summary();
    const lines = largest.map(([top, n]) => `    ${scope}${top}  ${n}`);
    if (others) lines.push(`    ${otherPaths(others.paths)}  ${others.keys}`);
    return lines.join('\n') || '    (none)';
  };
  return [
    `dry run: nothing was written to ${target}`,
    `  would delete ${existing} keys under "${scope}"${existing > 0 ? ' (needs --force)' : ''}:`,
    rows(toDelete),
    `  would write ${plan.records} keys (${plan.bytes} bytes)${plan.skipped ? `, leaving out ${plan.skipped} outside --prefix` : ''}:`,
    rows(plan.byTopLevel),
  ].join('\n');
}

function relativePrefix(request: RestoreRequest, prefix: string): string {
  // A PX dump's keys are relative; accept --prefix either way.
  if (request.relativeKeys && prefix.startsWith(request.base)) return prefix.slice(request.base.length);
  return prefix;
}

/** Where a restore records its events, and what every event of one attempt says about it. */
export interface RestoreAttemptInfo {
  repository?: RestoreRepository | undefined;
  logger: Logger;
  target: KvTarget;
  force: boolean;
  dryRun: boolean;
  /** What is being restored: backup id, file, cluster id. */
  origin: Record<string, unknown>;
}

/** Who/what/where of an attempt, shared by all its audit events. */
export function attemptSubject(attempt: RestoreAttemptInfo): Record<string, unknown> {
  return { ...attempt.origin, target: attempt.target.description, force: attempt.force, ...(attempt.dryRun ? { dryRun: true } : {}) };
}

/**
 * Records an outcome. A trail that cannot be written is reported loudly but does not change the
 * restore's own outcome: an abort must still exit 3, and a restore that worked must not look failed.
 */
export async function recordRestoreEvent(attempt: Pick<RestoreAttemptInfo, 'repository' | 'logger'>, type: AuditEventType, subject: Record<string, unknown>): Promise<void> {
  if (!attempt.repository) {
    attempt.logger.warn(`no repository configured: this ${type} is not recorded in an audit trail`);
    return;
  }
  await appendOrReport(attempt.repository.store, type, subject, attempt.logger);
}

/**
 * Errors whose outcome is already in the trail. runRestore records its own failures (drills call it
 * directly) and the commands record whatever fails around it (fetch, hash check, choosing a dump);
 * this keeps it to one event per attempt.
 */
const recorded = new WeakSet<object>();

/** Marks an error whose event was just recorded (an abort), so no caller records it again. */
export function alreadyRecorded<E extends object>(err: E): E {
  recorded.add(err);
  return err;
}

/** Records a failed attempt as `restore-failed` with the error and exit code, once; the caller rethrows it unchanged. */
export async function recordRestoreFailure(attempt: Pick<RestoreAttemptInfo, 'repository' | 'logger'>, subject: Record<string, unknown>, err: unknown): Promise<void> {
  if (typeof err === 'object' && err !== null) {
    if (recorded.has(err)) return;
    recorded.add(err);
  }
  const exitCode = err instanceof KvdrError ? err.exitCode : ExitCode.Failure;
  await recordRestoreEvent(attempt, 'restore-failed', { ...subject, error: oneLine(err), exitCode });
}

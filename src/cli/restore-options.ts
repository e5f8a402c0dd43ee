import type { Command } from 'commander';
import type { KvdrConfig } from '../config/schema.js';
import { checkPrefixFlags } from '../restore/key-scope.js';
import type { RestoreRequest, RestoreResult } from '../restore/run-restore.js';
import { parseKvdbEndpoints } from '../sources/endpoint.js';
import { UsageError } from '../util/errors.js';
import { contextFor } from './context.js';

/** The flags every restore command shares (see addRestoreTargetOptions). */
export interface RestoreTargetFlags {
  target?: string;
  clusterId?: string;
  prefix?: string;
  toPrefix?: string;
  force?: boolean;
  safetyBackup?: boolean;
  dryRun?: boolean;
}

/** What a restore command's attempt gets: the open target and repository, and the flags they share. */
export type RestoreAttempt = Pick<
  RestoreRequest,
  'target' | 'targetSource' | 'force' | 'dryRun' | 'safetyBackup' | 'repository' | 'logger' | 'print' | 'prefix' | 'toPrefix' | 'origin'
>;

/**
 * Runs one restore attempt from parsed flags: checks the flags (a bad one is a usage error, and no
 * attempt), opens the target and the safety/audit repository, calls `run`, prints the outcome, and
 * closes everything whatever happens. From the moment `run` starts, a failure anywhere — the fetch, the
 * hash check, reading the input, the target — is a `restore-failed` event in the audit trail (unless
 * the restore recorded it itself), and the error goes on unchanged. `run` adds to `attempt.origin`
 * (backup id, file) as it learns what it restores.
 */
export async function withRestoreTarget(
  command: Command,
  flags: RestoreTargetFlags,
  config: KvdrConfig | undefined,
  origin: Record<string, unknown>,
  run: (attempt: RestoreAttempt) => Promise<RestoreResult | undefined>,
): Promise<void> {
  const ctx = contextFor(command);
  if (!flags.target) throw new UsageError('--target: give the KVDB to restore into, e.g. etcd:http://127.0.0.1:2379');
  const endpoint = parseKvdbEndpoints([flags.target]);
  checkPrefixFlags(flags);
  const [{ openTarget, restoreRepository }, { attemptSubject, recordRestoreFailure }] = await Promise.all([
    import('../restore/restore-context.js'),
    import('../restore/run-restore.js'),
  ]);
  const { target, source } = openTarget(endpoint, config);
  const repository = restoreRepository(config);
  const attempt: RestoreAttempt = {
    target,
    targetSource: source,
    force: flags.force ?? false,
    dryRun: flags.dryRun ?? false,
    safetyBackup: flags.safetyBackup ?? true,
    repository,
    logger: ctx.logger,
    print: ctx.print,
    origin: { ...origin },
    ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
    ...(flags.toPrefix !== undefined ? { toPrefix: flags.toPrefix } : {}),
  };
  try {
    let result: RestoreResult | undefined;
    try {
      result = await run(attempt);
    } catch (err) {
      await recordRestoreFailure(attempt, attemptSubject(attempt), err);
      throw err;
    }
    if (!result || result.dryRun) return;
    if (ctx.json) ctx.print(JSON.stringify(result, null, 2));
    else {
      ctx.print(
        `restored ${result.written} keys into ${target.description}` +
          (result.deleted ? ` after deleting ${result.deleted}` : '') +
          (result.safetyBackupId ? ` (safety backup ${result.safetyBackupId})` : ''),
      );
    }
  } finally {
    await target.close();
    await repository.store.close();
  }
}

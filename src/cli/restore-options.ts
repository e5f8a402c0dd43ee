import type { Command } from 'commander';
import type { KvdrConfig } from '../config/schema.js';
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

type Shared = Pick<RestoreRequest, 'target' | 'targetSource' | 'force' | 'dryRun' | 'safetyBackup' | 'repository' | 'logger' | 'print' | 'prefix' | 'toPrefix'>;

/**
 * Runs a restore from parsed flags: opens the target and the safety/audit repository, calls `run`,
 * prints the outcome, and closes everything whatever happens.
 */
export async function withRestoreTarget(
  command: Command,
  flags: RestoreTargetFlags,
  config: KvdrConfig | undefined,
  run: (shared: Shared) => Promise<RestoreResult | undefined>,
): Promise<void> {
  const ctx = contextFor(command);
  if (!flags.target) throw new UsageError('--target: give the KVDB to restore into, e.g. etcd:http://127.0.0.1:2379');
  const endpoint = parseKvdbEndpoints([flags.target]);
  const { openTarget, restoreRepository } = await import('../restore/restore-context.js');
  const { target, source } = openTarget(endpoint, config);
  const repository = restoreRepository(config);
  try {
    const result = await run({
      target,
      targetSource: source,
      force: flags.force ?? false,
      dryRun: flags.dryRun ?? false,
      safetyBackup: flags.safetyBackup ?? true,
      repository,
      logger: ctx.logger,
      print: ctx.print,
      ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
      ...(flags.toPrefix !== undefined ? { toPrefix: flags.toPrefix } : {}),
    });
    if (!result || result.dryRun) return;
    if (ctx.json) ctx.print(JSON.stringify({ ...result, plan: { ...result.plan, byTopLevel: Object.fromEntries(result.plan.byTopLevel) } }, null, 2));
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

import type { Command } from 'commander';
import type { KvdrConfig } from '../config/schema.js';
import type { RestoreRequest, RestoreResult } from '../restore/engine.js';
import { checkPrefixFlags } from '../restore/key-scope.js';
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

/** What a command adds to the shared flags: what to restore, and how. */
export type RestoreCommandRequest = Pick<RestoreRequest, 'input'> & Partial<Pick<RestoreRequest, 'mode' | 'etcdMember' | 'caller' | 'asked' | 'maxInflatedBytes'>>;

/**
 * Runs one restore from parsed flags through the engine: checks the flags (a bad one is a usage error,
 * and no attempt), opens the target and the safety/audit repository, turns SIGINT/SIGTERM into an
 * abort (the engine rolls back, then exits 130), prints the outcome, and closes everything whatever happens.
 */
export async function runRestoreCommand(command: Command, flags: RestoreTargetFlags, config: KvdrConfig | undefined, request: RestoreCommandRequest): Promise<RestoreResult> {
  const ctx = contextFor(command, true);
  if (!flags.target) throw new UsageError('--target: give the KVDB to restore into, e.g. etcd:http://127.0.0.1:2379');
  const endpoint = parseKvdbEndpoints([flags.target]);
  checkPrefixFlags(flags);
  const [{ openTarget, restoreRepository }, { restore }] = await Promise.all([import('../restore/restore-context.js'), import('../restore/engine.js')]);
  const { target, source } = openTarget(endpoint, config);
  const repository = restoreRepository(config);
  const interrupt = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupt.signal.aborted) {
      process.stderr.write(`${command.name()}: ${signal} again: still putting the scope back; wait for it to finish\n`);
      return;
    }
    process.stderr.write(`${command.name()}: ${signal}: stopping the restore; anything already written is rolled back first\n`);
    interrupt.abort(new Error(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const result = await restore({
      ...request,
      target,
      targetSource: source,
      scope: {
        ...(flags.clusterId !== undefined ? { clusterId: flags.clusterId } : {}),
        ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
        ...(flags.toPrefix !== undefined ? { toPrefix: flags.toPrefix } : {}),
      },
      force: flags.force ?? false,
      dryRun: flags.dryRun ?? false,
      safetyBackup: flags.safetyBackup ?? true,
      repository,
      ...(config ? { configPath: ctx.configPath } : {}),
      logger: ctx.logger,
      print: ctx.print,
      notice: (line) => process.stderr.write(`${line}\n`),
      signal: interrupt.signal,
    });
    if (!result.dryRun) {
      if (ctx.json) ctx.print(JSON.stringify(result, null, 2));
      else if (request.mode !== 'native') {
        ctx.print(
          `restored ${result.written} keys into ${target.description}` +
            (result.deleted ? ` after deleting ${result.deleted}` : '') +
            (result.safetyBackupId ? ` (safety backup ${result.safetyBackupId})` : ''),
        );
      }
    }
    return result;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await Promise.allSettled([target.close(), repository.store.close()]);
  }
}

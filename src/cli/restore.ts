import { Command } from 'commander';
import { UsageError } from '../util/errors.js';
import type { GlobalOptions } from './context.js';
import { addRestoreTargetOptions, parsePositiveInt } from './options.js';
import { runRestoreCommand, type RestoreTargetFlags } from './restore-options.js';

interface RestoreFlags extends RestoreTargetFlags {
  kvdb_dump_file?: string[];
  file?: string;
  maxInflatedBytes?: number;
}

export function restoreCommand(): Command {
  const command = new Command('restore')
    .description('restore a local Portworx KVDB dump (or any local kvdr artifact with --file)')
    .option('--kvdb_dump_file <file>', 'a pwx_kvdb_<time>.dump file; repeat it, or name a directory, to restore the freshest of several', collect, [])
    .option('--file <file>', 'any local artifact: kvdr etcd export, consul kv export JSON, PX dump, etcd or Consul snapshot (kind detected)')
    .option('--max-inflated-bytes <n>', 'refuse a compressed file that inflates past n bytes (default 16 GiB)', parsePositiveInt);
  return addRestoreTargetOptions(command).action(async (flags: RestoreFlags, cmd: Command) => {
    const { optionalConfig } = await import('../restore/restore-context.js');
    const dumps = flags.kvdb_dump_file ?? [];
    if ((dumps.length > 0) === (flags.file !== undefined)) throw new UsageError('give --kvdb_dump_file <file> or --file <file> (one of them)');
    if (dumps.length > 0 && !flags.clusterId) throw new UsageError('--cluster-id: a PX dump holds keys relative to pwx/<cluster-id>/; name the cluster');
    const config = await optionalConfig(cmd.optsWithGlobals<GlobalOptions>().config);
    await runRestoreCommand(cmd, flags, config, {
      input: dumps.length > 0 ? { from: 'dumps', paths: dumps } : { from: 'file', path: flags.file as string },
      ...(flags.maxInflatedBytes !== undefined ? { maxInflatedBytes: flags.maxInflatedBytes } : {}),
    });
  });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

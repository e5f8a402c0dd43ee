import { Command } from 'commander';
import { UsageError } from '../util/errors.js';
import type { GlobalOptions } from './context.js';
import { addRestoreTargetOptions } from './options.js';
import { withRestoreTarget, type RestoreTargetFlags } from './restore-options.js';

interface RestoreFlags extends RestoreTargetFlags {
  kvdb_dump_file?: string[];
  file?: string;
}

export function restoreCommand(): Command {
  const command = new Command('restore')
    .description('restore a local Portworx KVDB dump (or any local kvdr artifact with --file)')
    .option('--kvdb_dump_file <file>', 'a pwx_kvdb_<time>.dump file; repeat it, or name a directory, to restore the freshest of several', collect, [])
    .option('--file <file>', 'any local artifact: kvdr etcd export, consul kv export JSON, PX dump (kind detected)');
  return addRestoreTargetOptions(command).action(async (flags: RestoreFlags, cmd: Command) => {
    const [{ runRestore }, { sniffArtifact, exportScope }, { chooseFreshestDump }, { optionalConfig }] = await Promise.all([
      import('../restore/run-restore.js'),
      import('../restore/local-artifact.js'),
      import('../restore/freshest-dump.js'),
      import('../restore/restore-context.js'),
    ]);
    const dumps = flags.kvdb_dump_file ?? [];
    if ((dumps.length > 0) === (flags.file !== undefined)) throw new UsageError('give --kvdb_dump_file <file> or --file <file> (one of them)');
    if (dumps.length > 0 && !flags.clusterId) throw new UsageError('--cluster-id: a PX dump holds keys relative to pwx/<cluster-id>/; name the cluster');
    const config = await optionalConfig(cmd.optsWithGlobals<GlobalOptions>().config);

    const named = flags.file ?? dumps.join(', ');
    const origin = { file: named, ...(flags.clusterId ? { clusterId: flags.clusterId } : {}) };
    await withRestoreTarget(cmd, flags, config, origin, async (attempt) => {
      let path = flags.file as string;
      if (dumps.length > 0) {
        const choice = await chooseFreshestDump(dumps);
        // Which dump, and why: said whenever there was a choice to make.
        if (choice.reason.startsWith('chose')) process.stderr.write(`${choice.reason}\n`);
        path = choice.chosen.path;
        attempt.origin['file'] = path;
      }
      const artifact = await sniffArtifact(path);
      attempt.origin['format'] = artifact.format;
      if (dumps.length > 0 && artifact.format !== 'px-dump') throw new UsageError(`--kvdb_dump_file: ${artifact.label} is a ${artifact.format}, not a PX dump; use --file`);
      const pxDump = artifact.format === 'px-dump';
      if (pxDump && !flags.clusterId) throw new UsageError('--cluster-id: a PX dump holds keys relative to pwx/<cluster-id>/; name the cluster');
      const base = pxDump ? `pwx/${flags.clusterId as string}/` : artifact.format === 'etcd-export' ? await exportScope(artifact) : '';
      return runRestore({ ...attempt, artifact, base, relativeKeys: pxDump });
    });
  });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

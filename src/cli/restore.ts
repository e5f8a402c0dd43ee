import { Command } from 'commander';
import { notBuiltYet } from './not-built.js';
import { addRestoreTargetOptions } from './options.js';

export function restoreCommand(): Command {
  const command = new Command('restore')
    .description('restore a local Portworx KVDB dump (or any local kvdr artifact with --file)')
    .option('--kvdb_dump_file <file>', 'a pwx_kvdb_<time>.dump file written by a Portworx node')
    .option('--file <file>', 'any local artifact: etcd snapshot or export, Consul snapshot or export');
  return addRestoreTargetOptions(command).action(notBuiltYet('restore'));
}

import { Command, Option } from 'commander';
import { notBuiltYet } from './not-built.js';
import { addRestoreTargetOptions, kindOption, parseTime } from './options.js';

export function restoreFromS3Command(): Command {
  const command = new Command('restore-from-s3')
    .description('fetch a backup from the repository, verify it, and replay it into etcd or Consul')
    .option('--backup <id>', 'the backup to restore')
    .option('--latest', 'the newest successful backup (narrowed by --job, --kind, --before)')
    .option('--job <job>', 'with --latest: only this job')
    .addOption(kindOption())
    .option('--before <time>', 'with --latest: newest backup taken before this time (ISO-8601 or an age like 24h)', parseTime)
    .addOption(new Option('--mode <mode>', 'keys: replay keys into a live cluster; native: full-cluster restore of a snapshot').choices(['keys', 'native']).default('keys'));
  return addRestoreTargetOptions(command).action(notBuiltYet('restore-from-s3'));
}

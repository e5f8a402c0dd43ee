import { Command } from 'commander';
import { notBuiltYet } from './not-built.js';

export function backupCommand(): Command {
  return new Command('backup')
    .description('run one configured job now and print the backup id')
    .argument('<job>', 'name of a job in the config')
    .action(notBuiltYet('backup'));
}

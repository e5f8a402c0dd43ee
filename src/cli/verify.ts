import { Command } from 'commander';
import { notBuiltYet } from './not-built.js';
import { parsePositiveInt } from './options.js';

export function verifyCommand(): Command {
  return new Command('verify')
    .description('re-download backups and re-hash them against their manifests')
    .option('--backup <id>', 'one backup')
    .option('--all', 'every backup in the catalog')
    .option('--sample <n>', 'n backups chosen at random', parsePositiveInt)
    .action(notBuiltYet('verify'));
}

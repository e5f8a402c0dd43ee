import { Command } from 'commander';
import { notBuiltYet } from './not-built.js';

export function pruneCommand(): Command {
  return new Command('prune')
    .description('apply retention: delete expired backups and orphaned artifacts')
    .option('--dry-run', 'list what would be deleted and delete nothing')
    .action(notBuiltYet('prune'));
}

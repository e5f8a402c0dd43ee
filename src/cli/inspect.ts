import { Command } from 'commander';
import { notBuiltYet } from './not-built.js';

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('what an artifact holds: kind, revision or index, key count, top-level prefixes')
    .argument('<backup-id-or-file>', 'a backup id from the catalog, or a local file')
    .action(notBuiltYet('inspect'));
}

import { Command, Option } from 'commander';
import { notBuiltYet } from './not-built.js';
import { parseTime } from './options.js';

export function auditCommand(): Command {
  return new Command('audit')
    .description('compliance report over the backup history; exit 5 when a control fails')
    .option('--since <time>', 'start of the period (ISO-8601 or an age like 30d)', parseTime)
    .option('--until <time>', 'end of the period (ISO-8601 or an age)', parseTime)
    .addOption(new Option('--format <format>', 'report format').choices(['json', 'csv', 'md', 'html']).default('md'))
    .option('--out <file>', 'write the report to a file instead of stdout')
    .option('--verify-log', "check the audit trail's hash chain and name the first broken link")
    .action(notBuiltYet('audit'));
}

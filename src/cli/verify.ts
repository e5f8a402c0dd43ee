import { Command } from 'commander';
import { UsageError } from '../util/errors.js';
import { formatBytes, renderTable } from '../util/table.js';
import { contextFor } from './context.js';
import { parsePositiveInt } from './options.js';

interface VerifyFlags {
  backup?: string;
  all?: boolean;
  sample?: number;
}

export function verifyCommand(): Command {
  return new Command('verify')
    .description('re-download backups and re-hash them against their manifests; exit 4 on any mismatch')
    .option('--backup <id>', 'one backup')
    .option('--all', 'every backup in the catalog')
    .option('--sample <n>', 'n backups chosen at random', parsePositiveInt)
    .action(async (flags: VerifyFlags, command: Command) => {
      const chosen = [flags.backup !== undefined, flags.all === true, flags.sample !== undefined].filter(Boolean).length;
      if (chosen !== 1) throw new UsageError('give exactly one of --backup <id>, --all or --sample <n>');
      const { assertVerified, verifyBackups } = await import('../audit/verify-backups.js');
      const ctx = contextFor(command);
      const config = await ctx.config();
      const selection = flags.backup !== undefined ? { backup: flags.backup } : flags.all ? { all: true as const } : { sample: flags.sample as number };
      const results = await verifyBackups(config, selection, ctx.logger);
      if (ctx.json) ctx.print(JSON.stringify(results, null, 2));
      else if (results.length === 0) ctx.print('no backups to verify');
      else ctx.print(renderTable(['BACKUP', 'JOB', 'RESULT', 'SIZE', 'CHECKS'], results.map((r) => [r.backup, r.job, r.result, formatBytes(r.bytes), r.result === 'ok' ? r.checks.join(', ') : r.detail])));
      assertVerified(results);
    });
}

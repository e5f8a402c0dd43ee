import { Command } from 'commander';
import { renderTable } from '../util/table.js';
import { contextFor } from './context.js';

export function pruneCommand(): Command {
  return new Command('prune')
    .description('apply retention: delete expired backups and orphaned artifacts')
    .option('--dry-run', 'list what would be deleted and delete nothing')
    .action(async (options: { dryRun?: boolean }, command: Command) => {
      const { prune } = await import('../repository/prune.js');
      const ctx = contextFor(command);
      const result = await prune({ config: await ctx.config(), logger: ctx.logger, dryRun: options.dryRun ?? false });
      if (ctx.json) return ctx.print(JSON.stringify(result, null, 2));
      const verb = options.dryRun ? 'would delete' : 'deleted';
      const rows = [
        ...result.deleted.map((d) => [d.id, d.job, d.repository, d.reasons.join('; ')]),
        ...result.orphans.map((o) => [o.key, '-', o.repository, 'artifact without a manifest']),
      ];
      if (rows.length > 0) ctx.print(renderTable(['BACKUP', 'JOB', 'REPOSITORY', 'WHY'], rows));
      ctx.print(`${verb} ${result.deleted.length} backups and ${result.orphans.length} orphaned artifacts; kept ${result.kept}`);
    });
}

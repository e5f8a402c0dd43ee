import { Command } from 'commander';
import { contextFor } from './context.js';
import { onTerminationSignal } from './signals.js';

export function backupCommand(): Command {
  return new Command('backup')
    .description('run one configured job now and print the backup id (one per collected dump for px-dumps jobs)')
    .argument('<job>', 'name of a job in the config')
    .action(async (job: string, _options: unknown, command: Command) => {
      const [{ runBackup, findJob }, { collectPxDumps }] = await Promise.all([import('../backup/run-backup.js'), import('../backup/collect-px-dumps.js')]);
      const ctx = contextFor(command);
      const config = await ctx.config();
      if (findJob(config, job).kind === 'px-dumps') {
        const result = await collectPxDumps({ config, job, logger: ctx.logger });
        if (ctx.json) return ctx.print(JSON.stringify(result, null, 2));
        for (const manifest of result.stored) ctx.print(manifest.id);
        process.stderr.write(
          `${result.stored.length} new dumps stored, ${result.duplicates.length} already in the repository, ${result.unsettled.length} still being written\n`,
        );
        return;
      }
      const controller = new AbortController();
      const release = onTerminationSignal(() => controller.abort());
      try {
        const manifest = await runBackup({ config, job, logger: ctx.logger, signal: controller.signal });
        ctx.print(ctx.json ? JSON.stringify(manifest, null, 2) : manifest.id);
      } finally {
        release();
      }
    });
}

import { Command } from 'commander';
import { contextFor } from './context.js';
import { onTerminationSignal } from './signals.js';

export function backupCommand(): Command {
  return new Command('backup')
    .description('run one configured job now and print the backup id')
    .argument('<job>', 'name of a job in the config')
    .action(async (job: string, _options: unknown, command: Command) => {
      const { runBackup } = await import('../backup/run-backup.js');
      const ctx = contextFor(command);
      const config = await ctx.config();
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

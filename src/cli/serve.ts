import { Command } from 'commander';
import { contextFor } from './context.js';

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the scheduler service: cron jobs, PX dump collection, retention (HTTP status and leader election: not built yet)')
    .action(async (_options: unknown, command: Command) => {
      const { backupScheduler } = await import('../scheduler/service.js');
      const ctx = contextFor(command);
      const config = await ctx.config();
      const scheduler = backupScheduler(config, ctx.logger);
      await scheduler.start();
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          ctx.logger.info(`${signal}: stopping the scheduler`);
          resolve();
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      await scheduler.close();
      ctx.logger.info('scheduler stopped');
    });
}

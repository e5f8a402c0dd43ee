import { Command } from 'commander';
import { contextFor } from './context.js';

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the scheduler service: cron jobs, PX dump collection, retention, HTTP status and metrics')
    .action(async (_options: unknown, command: Command) => {
      const [{ backupScheduler }, { HttpServer }, { ServiceMetrics }] = await Promise.all([
        import('../scheduler/service.js'),
        import('../server/http-server.js'),
        import('../server/metrics.js'),
      ]);
      const ctx = contextFor(command);
      const config = await ctx.config();
      const metrics = new ServiceMetrics();
      let started = false;
      const scheduler = backupScheduler(config, ctx.logger, {
        shutdownGraceMs: config.service.shutdownGraceSeconds * 1000,
        onRun: (event) => {
          if (event.phase === 'start') return metrics.running.set({ job: event.job }, 1);
          metrics.running.set({ job: event.job }, 0);
          metrics.recordRun(event.job, event.ok, event.seconds, event.bytes);
        },
      });
      const http = new HttpServer({ config, logger: ctx.logger, metrics, jobs: () => scheduler.status(), role: () => (started ? 'single' : 'starting') });
      const address = await http.listen();
      ctx.logger.info(`HTTP status on http://${address.address}:${address.port}/`);
      await scheduler.start();
      started = true;
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          ctx.logger.info(`${signal}: stopping the scheduler`);
          resolve();
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      await scheduler.close();
      await http.close();
      ctx.logger.info('scheduler stopped');
    });
}

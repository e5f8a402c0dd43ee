import { Command } from 'commander';
import type { SourceConfig } from '../config/schema.js';
import type { Leadership } from '../scheduler/leadership.js';
import { contextFor } from './context.js';

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the scheduler service: cron jobs, PX dump collection, retention, HTTP status and metrics')
    .action(async (_options: unknown, command: Command) => {
      const [{ backupScheduler, watchDumps }, { HttpServer }, { ServiceMetrics }, { EtcdLeadership, SingleReplica }, { ConsulLeadership }, { ContinuousSupervisor }, { registerContinuousMetrics }] = await Promise.all([
        import('../scheduler/service.js'),
        import('../server/http-server.js'),
        import('../server/metrics.js'),
        import('../scheduler/leadership.js'),
        import('../scheduler/consul-leadership.js'),
        import('../scheduler/continuous-supervisor.js'),
        import('../server/continuous-metrics.js'),
      ]);
      const ctx = contextFor(command);
      const config = await ctx.config();
      // Listening from the start: a signal during startup (catalog reads, catch-up) still shuts down gracefully.
      const stopped = new Promise<string>((resolve) => {
        process.once('SIGTERM', () => resolve('SIGTERM'));
        process.once('SIGINT', () => resolve('SIGINT'));
      });
      const metrics = new ServiceMetrics();
      let started = false;
      const election = config.service.leaderElection;
      let leadership: Leadership = new SingleReplica();
      if (election) {
        const source = config.sources.find((s) => s.name === election.source) as SourceConfig;
        const elected =
          election.backend === 'etcd'
            ? new EtcdLeadership(source, election.key, election.ttlSeconds, ctx.logger)
            : new ConsulLeadership(source, election.key, election.ttlSeconds, ctx.logger);
        elected.start();
        leadership = elected;
      }
      const continuous = new ContinuousSupervisor(config, ctx.logger, leadership);
      registerContinuousMetrics(metrics.registry, () => continuous.states());
      const scheduler = backupScheduler(
        config,
        ctx.logger,
        {
          leadership,
          shutdownGraceMs: config.service.shutdownGraceSeconds * 1000,
          onRun: (event) => {
            if (event.phase === 'start') return metrics.running.set({ job: event.job }, 1);
            metrics.running.set({ job: event.job }, 0);
            metrics.recordRun(event.job, event.ok, event.seconds, event.bytes);
          },
        },
        { onPruneFailure: (job) => metrics.pruneFailures.inc({ job }), continuous },
      );
      metrics.watchJobs(() => scheduler.status());
      // What the alerts need besides the runs: job kinds and RPOs, the leader flag, repository probes.
      metrics.describeService(config, () => leadership.role());
      void metrics.probeRepositories(config.repositories);
      const http = new HttpServer({ config, logger: ctx.logger, metrics, jobs: () => scheduler.status(), role: () => (started ? leadership.role() : 'starting'), continuous: () => continuous.states() });
      const address = await http.listen();
      ctx.logger.info(`HTTP status on http://${address.address}:${address.port}/`);
      // A start stuck on a repository that does not answer must not make the service unstoppable.
      const early = await Promise.race([scheduler.start().then(() => undefined), stopped]);
      started = true;
      if (early === undefined) continuous.start();
      const dumps = watchDumps(config, scheduler, ctx.logger);
      ctx.logger.info(`${early ?? (await stopped)}: stopping the scheduler`);
      dumps.close();
      // Continuous jobs cut and upload what is pending before the lock is given up.
      await continuous.close();
      await scheduler.close();
      await leadership.close();
      metrics.close();
      await http.close();
      ctx.logger.info('scheduler stopped');
      // Everything is closed; a handle left open by a job that would not stop must not keep the process up.
      setTimeout(() => process.exit(process.exitCode ?? 0), 2_000).unref();
    });
}

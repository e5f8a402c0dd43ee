import { Command } from 'commander';
import { contextFor } from './context.js';
import { onTerminationSignal } from './signals.js';

export function backupCommand(): Command {
  return new Command('backup')
    .description('run one configured job now and print the backup id (one per collected dump for px-dumps jobs; a restore-test job runs its drill, a verify job its checks)')
    .argument('<job>', 'name of a job in the config')
    .action(async (job: string, _options: unknown, command: Command) => {
      const { incompleteCollection, runJob } = await import('../scheduler/run-job.js');
      const ctx = contextFor(command);
      const config = await ctx.config();
      const controller = new AbortController();
      const release = onTerminationSignal(() => controller.abort());
      try {
        const outcome = await runJob({ config, job, logger: ctx.logger, signal: controller.signal });
        const incomplete = outcome.kind === 'px-dumps' ? incompleteCollection(outcome.collected) : undefined;
        if (ctx.json) {
          ctx.print(JSON.stringify(outcome.kind === 'backup' ? outcome.manifests[0] : outcome, null, 2));
          if (incomplete) throw incomplete;
          return;
        }
        switch (outcome.kind) {
          case 'backup':
            return ctx.print(outcome.manifests.map((m) => m.id).join('\n'));
          case 'px-dumps': {
            const { collected } = outcome;
            for (const manifest of collected.stored) ctx.print(manifest.id);
            process.stderr.write(
              `${collected.stored.length} new dumps stored, ${collected.duplicates.length} already in the repository, ${collected.unsettled.length} still being written\n`,
            );
            if (incomplete) throw incomplete;
            return;
          }
          case 'verify':
            return ctx.print(outcome.results.length === 0 ? 'no backups to verify' : `verified ${outcome.results.length} backups: each matches its manifest`);
          case 'restore-test': {
            const { drill } = outcome;
            return ctx.print(
              `drill ${drill.drill}: restored ${drill.records} keys of ${drill.backup} into ${drill.target} under "${drill.scope}", verified, ` +
                `in ${(drill.rtoMs / 1000).toFixed(1)}s (RTO), and cleaned up`,
            );
          }
        }
      } finally {
        release();
      }
    });
}

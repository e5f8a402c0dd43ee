import { Command } from 'commander';
import type { Manifest } from '../repository/manifest.js';
import { formatBytes, renderTable } from '../util/table.js';
import { contextFor } from './context.js';
import { kindOption } from './options.js';

interface ListOptions {
  job?: string;
  kind?: string;
  json?: boolean;
}

export function backupsCommand(): Command {
  const list = new Command('list')
    .description('the catalog: every backup in every configured repository, oldest first')
    .option('--job <job>', 'only this job')
    .addOption(kindOption())
    .option('--json', 'machine-readable output: the manifests as a JSON array')
    .action(async (options: ListOptions, command: Command) => {
      const [{ oldestFirst, readCatalog }, { openStore }] = await Promise.all([
        import('../repository/catalog.js'),
        import('../repository/open-store.js'),
      ]);
      const ctx = contextFor(command);
      const config = await ctx.config();
      const all: Manifest[] = [];
      for (const repository of config.repositories) {
        const store = openStore(repository);
        try {
          all.push(...(await readCatalog(store, options)));
        } finally {
          await store.close();
        }
      }
      all.sort(oldestFirst);
      if (options.json || ctx.json) return ctx.print(JSON.stringify(all, null, 2));
      if (all.length === 0) {
        const where = config.repositories.map((r) => r.name).join(', ');
        return ctx.print(`no backups yet in ${where}; run \`kvdr backup <job>\` or \`kvdr serve\``);
      }
      ctx.print(
        renderTable(
          ['ID', 'JOB', 'KIND', 'FINISHED', 'KEYS', 'SIZE', 'REPOSITORY'],
          all.map((m) => [
            m.id,
            m.job,
            m.kind,
            m.finishedAt,
            m.records === undefined ? '-' : String(m.records),
            formatBytes(m.bytes.stored),
            m.repository.name,
          ]),
        ),
      );
    });
  return new Command('backups').description('the backup catalog').addCommand(list);
}

import { Command } from 'commander';
import { formatBytes, renderTable } from '../util/table.js';
import { contextFor } from './context.js';
import { parsePositiveInt } from './options.js';

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('what an artifact holds: kind, revision or index, key count, top-level prefixes')
    .argument('<backup-id-or-file>', 'a backup id from the catalog, or a local file')
    .option('--depth <n>', 'path segments that make a prefix', parsePositiveInt, 1)
    .action(async (what: string, options: { depth: number }, command: Command) => {
      const [{ inspectArtifact }, { sniffArtifact }, { selectBackup, fetchVerified }] = await Promise.all([
        import('../restore/inspect-artifact.js'),
        import('../restore/local-artifact.js'),
        import('../restore/fetch-backup.js'),
      ]);
      const ctx = contextFor(command);
      const isBackupId = /^\d{8}T\d{6}Z-.+-[0-9a-f]{6}$/.test(what);
      let summary;
      let manifest;
      if (isBackupId) {
        const selected = await selectBackup(await ctx.config(), { backup: what });
        manifest = selected.manifest;
        try {
          const { artifact, cleanup } = await fetchVerified(selected);
          try {
            summary = await inspectArtifact(artifact, options.depth);
          } finally {
            await cleanup();
          }
        } finally {
          await selected.store.close();
        }
      } else {
        summary = await inspectArtifact(await sniffArtifact(what), options.depth);
      }
      // What the artifact says first; a backup's manifest fills in what the format does not record.
      const revision = summary.revision ?? manifest?.revision;
      const index = summary.index ?? manifest?.raftIndex;
      if (ctx.json) {
        const origin = { ...(revision !== undefined ? { revision } : {}), ...(index !== undefined ? { index } : {}) };
        return ctx.print(JSON.stringify({ ...summary, ...origin, ...(manifest ? { backup: manifest.id, kind: manifest.kind } : {}) }, null, 2));
      }
      ctx.print(
        [
          `${manifest ? `backup ${manifest.id}, ` : ''}${summary.format}` +
            `${revision !== undefined ? `, revision ${revision}` : ''}${index !== undefined ? `, raft index ${index}` : ''}`,
          `${summary.keys} keys, ${formatBytes(summary.bytes)} of keys and values`,
          '',
          renderTable(['PREFIX', 'KEYS', 'BYTES'], summary.prefixes.map((p) => [p.prefix || '(root)', String(p.keys), formatBytes(p.bytes)])),
        ].join('\n'),
      );
    });
}

import { Command, Option } from 'commander';
import { UsageError } from '../util/errors.js';
import { contextFor } from './context.js';
import { addRestoreTargetOptions, kindOption, parseTime } from './options.js';
import { withRestoreTarget, type RestoreTargetFlags } from './restore-options.js';

interface RestoreFromS3Flags extends RestoreTargetFlags {
  backup?: string;
  latest?: boolean;
  job?: string;
  kind?: string;
  before?: Date;
  mode: 'keys' | 'native';
  dataDir?: string;
  name: string;
  peerUrl: string;
  initialCluster?: string;
}

export function restoreFromS3Command(): Command {
  const command = new Command('restore-from-s3')
    .description('fetch a backup from the repository, verify it, and replay it into etcd or Consul')
    .option('--backup <id>', 'the backup to restore')
    .option('--latest', 'the newest successful backup (narrowed by --job, --kind, --before, --cluster-id)')
    .option('--job <job>', 'with --latest: only this job')
    .addOption(kindOption())
    .option('--before <time>', 'with --latest: newest backup taken before this time (ISO-8601 or an age like 24h)', parseTime)
    .addOption(new Option('--mode <mode>', 'keys: replay keys into a live cluster; native: full-cluster restore of a snapshot').choices(['keys', 'native']).default('keys'))
    .option('--data-dir <dir>', 'native etcd: the member data directory to create (default ./kvdr-restore-<backup>)')
    .option('--name <member>', 'native etcd: the member name', 'default')
    .option('--peer-url <url>', 'native etcd: the member peer URL', 'http://localhost:2380')
    .option('--initial-cluster <list>', 'native etcd: name=peer-url,… of every member (default: this member alone)');
  return addRestoreTargetOptions(command).action(async (flags: RestoreFromS3Flags, cmd: Command) => {
    const [{ runRestore }, { selectBackup, fetchVerified }, { runNativeRestore }] = await Promise.all([
      import('../restore/run-restore.js'),
      import('../restore/fetch-backup.js'),
      import('../restore/native-restore.js'),
    ]);
    const ctx = contextFor(cmd);
    if (flags.backup === undefined && !flags.latest) throw new UsageError('give --backup <id> or --latest');
    const config = await ctx.config();
    // What was asked for; the chosen backup's id replaces it once it is known.
    const asked = flags.backup !== undefined
      ? { backup: flags.backup }
      : { latest: true, ...(flags.job !== undefined ? { job: flags.job } : {}), ...(flags.kind !== undefined ? { kind: flags.kind } : {}), ...(flags.before ? { before: flags.before.toISOString() } : {}) };
    await withRestoreTarget(cmd, flags, config, { ...asked, ...(flags.mode === 'native' ? { mode: 'native' } : {}) }, async (attempt) => {
      const selected = await selectBackup(config, {
        ...(flags.backup !== undefined ? { backup: flags.backup } : {}),
        ...(flags.latest ? { latest: true } : {}),
        ...(flags.job !== undefined ? { job: flags.job } : {}),
        ...(flags.kind !== undefined ? { kind: flags.kind } : {}),
        ...(flags.before !== undefined ? { before: flags.before } : {}),
        ...(flags.clusterId !== undefined && flags.backup === undefined ? { clusterId: flags.clusterId } : {}),
      });
      const { manifest } = selected;
      if (selected.reason) process.stderr.write(`${selected.reason}\n`);
      Object.assign(attempt.origin, { backup: manifest.id, job: manifest.job, kind: manifest.kind, repository: manifest.repository.name });
      try {
        const backupCluster = manifest.source.clusterId;
        if (flags.clusterId && backupCluster && flags.clusterId !== backupCluster && flags.toPrefix === undefined) {
          throw new UsageError(`backup ${manifest.id} is of cluster ${backupCluster}, not ${flags.clusterId}; pass --to-prefix pwx/${flags.clusterId}/ to restore it there`);
        }
        ctx.logger.info({ backup: manifest.id, kind: manifest.kind, finishedAt: manifest.finishedAt }, `restoring backup ${manifest.id}`);
        const { artifact, cleanup } = await fetchVerified(selected);
        try {
          if (flags.mode === 'native') {
            await runNativeRestore({
              ...attempt,
              repository: attempt.repository as NonNullable<typeof attempt.repository>,
              artifact,
              backupId: manifest.id,
              etcd: {
                dataDir: flags.dataDir ?? `./kvdr-restore-${manifest.id}`,
                name: flags.name,
                peerUrl: flags.peerUrl,
                ...(flags.initialCluster !== undefined ? { initialCluster: flags.initialCluster } : {}),
              },
            });
            return undefined;
          }
          const pxDump = artifact.format === 'px-dump';
          const clusterId = flags.clusterId ?? backupCluster;
          if (pxDump && !clusterId) throw new UsageError(`--cluster-id: backup ${manifest.id} is a PX dump of an unknown cluster; name the cluster`);
          const base = pxDump ? `pwx/${clusterId as string}/` : manifest.scope.prefix;
          return await runRestore({ ...attempt, artifact, base, relativeKeys: pxDump });
        } finally {
          await cleanup();
        }
      } finally {
        await selected.store.close();
      }
    });
  });
}

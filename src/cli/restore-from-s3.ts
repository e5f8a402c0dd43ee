import { Command, Option } from 'commander';
import { describePoint, parsePointInTime, type PointInTime } from '../restore/point.js';
import { UsageError } from '../util/errors.js';
import { contextFor } from './context.js';
import { addRestoreTargetOptions, kindOption, parseTime } from './options.js';
import { runRestoreCommand, type RestoreTargetFlags } from './restore-options.js';

interface RestoreFromS3Flags extends RestoreTargetFlags {
  backup?: string;
  latest?: boolean;
  job?: string;
  kind?: string;
  before?: Date;
  at?: PointInTime;
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
    .option('--at <point>', 'point-in-time restore from a continuous job: rev:<N> or an RFC 3339 time (with --job, or --cluster-id to search every job of that cluster)', parsePointInTime)
    .option('--before <time>', 'with --latest: newest backup taken before this time (ISO-8601 or an age like 24h)', parseTime)
    .addOption(new Option('--mode <mode>', 'keys: replay keys into a live cluster; native: full-cluster restore of a snapshot').choices(['keys', 'native']).default('keys'))
    .option('--data-dir <dir>', 'native etcd: the member data directory to create (default ./kvdr-restore-<backup>)')
    .option('--name <member>', 'native etcd: the member name', 'default')
    .option('--peer-url <url>', 'native etcd: the member peer URL', 'http://localhost:2380')
    .option('--initial-cluster <list>', 'native etcd: name=peer-url,… of every member (default: this member alone)');
  return addRestoreTargetOptions(command).action(async (flags: RestoreFromS3Flags, cmd: Command) => {
    const ctx = contextFor(cmd);
    const given = [flags.backup !== undefined, flags.latest === true, flags.at !== undefined].filter(Boolean).length;
    if (given !== 1) throw new UsageError('give exactly one of --backup <id>, --latest or --at <rev:N | time>');
    const config = await ctx.config();
    if (flags.at !== undefined) {
      if (flags.mode === 'native') throw new UsageError('--at restores keys; --mode native restores whole snapshots');
      const selector = { at: flags.at, ...(flags.job !== undefined ? { job: flags.job } : {}), ...(flags.clusterId !== undefined ? { clusterId: flags.clusterId } : {}) };
      await runRestoreCommand(cmd, flags, config, {
        input: { from: 'point-in-time', config, selector },
        asked: { at: describePoint(flags.at), ...(flags.job !== undefined ? { job: flags.job } : {}) },
        mode: 'keys',
      });
      return;
    }
    // What was asked for; the audit event also carries the chosen backup's id once it is known.
    const asked: Record<string, string | boolean> = flags.backup !== undefined
      ? { backup: flags.backup }
      : { latest: true, ...(flags.job !== undefined ? { job: flags.job } : {}), ...(flags.kind !== undefined ? { kind: flags.kind } : {}), ...(flags.before ? { before: flags.before.toISOString() } : {}) };
    await runRestoreCommand(cmd, flags, config, {
      input: {
        from: 'repository',
        config,
        selector: {
          ...(flags.backup !== undefined ? { backup: flags.backup } : {}),
          ...(flags.latest ? { latest: true } : {}),
          ...(flags.job !== undefined ? { job: flags.job } : {}),
          ...(flags.kind !== undefined ? { kind: flags.kind } : {}),
          ...(flags.before !== undefined ? { before: flags.before } : {}),
          ...(flags.clusterId !== undefined && flags.backup === undefined ? { clusterId: flags.clusterId } : {}),
        },
      },
      asked,
      mode: flags.mode,
      ...(flags.mode === 'native'
        ? {
            etcdMember: {
              dataDir: flags.dataDir ?? `./kvdr-restore-${flags.backup ?? 'latest'}`,
              name: flags.name,
              peerUrl: flags.peerUrl,
              ...(flags.initialCluster !== undefined ? { initialCluster: flags.initialCluster } : {}),
            },
          }
        : {}),
    });
  });
}

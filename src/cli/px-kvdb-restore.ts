#!/usr/bin/env node
import { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { KvdrError, UsageError } from '../util/errors.js';
import { dropIpServernameWarning } from '../util/known-warnings.js';
import { VERSION } from '../util/version.js';
import { runRestoreCommand } from './restore-options.js';
import { runCli } from './run-cli.js';

interface PxFlags {
  kvdb_dump_file: string;
  force?: boolean;
  px_config: string;
  kvdb?: string;
  cluster_id?: string;
}

/**
 * Drop-in for Portworx's px-kvdb-restore: same command, same flags, same abort/--force behaviour.
 * Cluster id and KVDB endpoints come from the node's config.json unless given.
 */
export function pxKvdbRestoreProgram(): Command {
  const program = new Command('px-kvdb-restore')
    .description('Restore a Portworx KVDB dump into a new etcd or Consul cluster')
    .version(VERSION, '-V, --version')
    .usage('run --kvdb_dump_file <file> [--force]');
  program
    .command('run')
    .description('restore the dump; aborts if keys already exist for the cluster unless --force deletes them first')
    .requiredOption('--kvdb_dump_file <file>', 'the dump to restore, e.g. /var/cores/kvdb_dump/pwx_kvdb_<time>.dump')
    .option('--force', 'delete the keys that already exist under the cluster id, then restore')
    .option('--px_config <path>', 'Portworx config to read clusterid and kvdb from', '/etc/pwx/config.json')
    .option('--kvdb <endpoint>', 'override the KVDB endpoint(s), e.g. etcd:http://host:2379')
    .option('--cluster_id <id>', 'override the cluster id')
    .action(async (flags: PxFlags, command: Command) => {
      const { optionalConfig } = await import('../restore/restore-context.js');
      const px = await readPxConfig(flags.px_config, flags.kvdb === undefined || flags.cluster_id === undefined);
      const clusterId = flags.cluster_id ?? px?.clusterid;
      const kvdb = flags.kvdb ?? px?.kvdb?.join(',');
      if (!clusterId) throw new UsageError(`no cluster id: ${flags.px_config} has no clusterid; pass --cluster_id`);
      if (!kvdb) throw new UsageError(`no KVDB endpoint: ${flags.px_config} has no kvdb; pass --kvdb etcd:http://host:2379`);
      const config = await optionalConfig(undefined);
      process.stderr.write(`Restoring kvdb dump ${flags.kvdb_dump_file} into ${kvdb} for cluster ${clusterId}\n`);
      await runRestoreCommand(command, { target: kvdb, clusterId, ...(flags.force ? { force: true } : {}) }, config, {
        input: { from: 'file', path: flags.kvdb_dump_file, expect: 'px-dump' },
        caller: { tool: 'px-kvdb-restore' },
      });
    });
  return program;
}

interface PxConfig {
  clusterid?: string;
  kvdb?: string[];
}

async function readPxConfig(path: string, needed: boolean): Promise<PxConfig | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (!needed) return undefined;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${path}: ${code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? String(err)})`}; pass --px_config <path>, or --kvdb and --cluster_id`);
  }
  try {
    const config = JSON.parse(text) as PxConfig;
    if (config.kvdb !== undefined && (!Array.isArray(config.kvdb) || config.kvdb.some((k) => typeof k !== 'string'))) {
      throw new KvdrError('kvdb must be a list of endpoints');
    }
    return config;
  } catch (err) {
    throw new UsageError(`${path}: not a Portworx config (${err instanceof Error ? err.message : String(err)})`);
  }
}

dropIpServernameWarning();
process.exitCode = await runCli(pxKvdbRestoreProgram());

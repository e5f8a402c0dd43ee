#!/usr/bin/env node
import { Command } from 'commander';
import { VERSION } from '../util/version.js';
import { notBuiltYet } from './not-built.js';
import { runCli } from './run-cli.js';

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
    .action(notBuiltYet('px-kvdb-restore run'));
  return program;
}

process.exitCode = await runCli(pxKvdbRestoreProgram());

import { readdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { KvdrConfig, RepositoryConfig, SourceConfig } from '../config/schema.js';
import { clusterScope } from '../config/scope.js';
import { readCatalog } from '../repository/catalog.js';
import type { Manifest } from '../repository/manifest.js';
import { openStore } from '../repository/open-store.js';
import { oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { pxDumpSource, scanPxDump } from './px-dump-source.js';
import { findJob, takeBackup } from './run-backup.js';

export interface CollectOptions {
  config: KvdrConfig;
  job: string;
  logger: Logger;
  /** @defaultValue () => new Date() */
  now?: () => Date;
  /** Extra facts for each manifest (what triggered the run, its cron slot). */
  details?: Record<string, unknown>;
  /** Aborting stops the run between dumps and interrupts the upload in progress (nothing is listed for it). */
  signal?: AbortSignal;
}

export interface CollectResult {
  stored: Manifest[];
  /** Dumps already in the repository (same content, whatever the name). */
  duplicates: string[];
  /** Dumps still being written: younger than pxDumps.stableSeconds. */
  unsettled: string[];
  /** Dumps that could not be read or stored; the others are collected all the same. */
  failed: { file: string; error: string }[];
}

/**
 * A px-dumps job: uploads each new `pwx_kvdb_*.dump` of the configured directories once. A dump is
 * taken only after it has not changed for `stableSeconds` (the node may still be writing it), and only
 * if no backup of this job already holds the same bytes — the same dump under a new name is not stored
 * twice. The local files stay where they are. One unreadable dump does not hold back the others: it is
 * reported in `failed` and tried again on the next run.
 */
export async function collectPxDumps(options: CollectOptions): Promise<CollectResult> {
  const { config, logger } = options;
  const now = options.now ?? (() => new Date());
  const job = findJob(config, options.job);
  const source = config.sources.find((s) => s.name === job.source) as SourceConfig;
  const repository = config.repositories.find((r) => r.name === job.repository) as RepositoryConfig;
  const node = config.pxDumps.node || hostname();
  const clusterId = config.pxDumps.clusterId ?? source.clusterId;
  const store = openStore(repository);
  const result: CollectResult = { stored: [], duplicates: [], unsettled: [], failed: [] };
  try {
    const known = new Set((await readCatalog(store, { job: job.name })).map((m) => m.details['contentSha256']));
    for (const path of await dumpFiles(config.pxDumps.dirs)) {
      options.signal?.throwIfAborted();
      try {
        const info = await stat(path);
        if (now().getTime() - info.mtimeMs < config.pxDumps.stableSeconds * 1000) {
          result.unsettled.push(path);
          logger.info({ file: path }, 'dump still changing; it will be collected on a later run');
          continue;
        }
        const facts = await scanPxDump(path);
        if (known.has(facts.contentSha256)) {
          result.duplicates.push(path);
          continue;
        }
        const manifest = await takeBackup({
          store,
          repository,
          job: job.name,
          kind: 'px-dumps',
          produce: 'px-dumps',
          artifact: pxDumpSource(path, facts, node, clusterId),
          source,
          scope: clusterId ? clusterScope(clusterId) : '',
          compression: job.compression,
          logger,
          now,
          ...(options.signal ? { signal: options.signal } : {}),
          ...(options.details ? { details: options.details } : {}),
        });
        known.add(facts.contentSha256);
        result.stored.push(manifest);
      } catch (err) {
        if (options.signal?.aborted) throw err;
        result.failed.push({ file: path, error: oneLine(err) });
        logger.error({ file: path }, `cannot collect ${path}: ${oneLine(err)}`);
      }
    }
    return result;
  } finally {
    await store.close();
  }
}

async function dumpFiles(dirs: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const dir of dirs) {
    const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    for (const name of names.sort()) if (/^pwx_kvdb_.*\.dump$/.test(name)) files.push(join(dir, name));
  }
  return files;
}

import type { JobConfig, RepositoryConfig, SourceConfig } from '../../config/schema.js';
import { sourceScope } from '../../config/scope.js';
import { CHAIN_START } from '../../formats/change-segment.js';
import type { KvRecord } from '../../formats/record.js';
import type { Manifest } from '../../repository/manifest.js';
import type { ObjectStore } from '../../repository/object-store.js';
import type { Logger } from '../../util/logger.js';
import { openConsulExport } from '../consul-export-source.js';
import { openEtcdExport } from '../etcd-export-source.js';
import { takeBackup } from '../run-backup.js';
import type { ChainTip } from './segmenter.js';

export interface BaseOptions {
  /** etcd: read the export at this revision (where the old chain was cut). @defaultValue the newest */
  revision?: number;
  /** Unix ms the base's state stands for, recorded as `details.pointAt` (a rebase: when the old chain was cut). */
  pointAt?: number;
  /** Sees every record as it is exported. */
  observe?: (record: KvRecord) => void;
}

export interface TakenBase {
  manifest: Manifest;
  /** Where the new chain starts. */
  tip: ChainTip;
  /** Consul: the scope's keys at the base's index (what the change feed diffs its first answer against). */
  keys?: Set<string>;
}

/** A continuous job's base: an export of the scope, stored like any backup, its manifest marked `role: base`. */
export async function takeChainBase(
  context: { store: ObjectStore; repository: RepositoryConfig; source: SourceConfig; job: JobConfig; logger: Logger },
  options: BaseOptions = {},
): Promise<TakenBase> {
  const { store, repository, source, job, logger } = context;
  const { revision, pointAt } = options;
  const scope = sourceScope(source);
  const keys = source.type === 'consul' ? new Set<string>() : undefined;
  const artifact =
    source.type === 'etcd'
      ? await openEtcdExport(source, scope, revision !== undefined ? { revision } : {})
      : await openConsulExport(source, scope, {
          observe: (record) => {
            keys?.add(record.key.toString('utf8'));
            options.observe?.(record);
          },
        });
  const manifest = await takeBackup({
    store,
    repository,
    job: job.name,
    kind: job.kind,
    produce: source.type === 'etcd' ? 'etcd-export' : 'consul-export',
    artifact,
    source,
    scope,
    compression: job.compression,
    // A base read at the revision the old chain was cut at stands for the state at that moment.
    details: { role: 'base', trigger: 'continuous', ...(pointAt !== undefined ? { pointAt: new Date(pointAt).toISOString() } : {}) },
    logger,
  });
  const baseRevision = (source.type === 'etcd' ? manifest.revision : manifest.raftIndex) ?? 0;
  const tip: ChainTip = {
    job: job.name,
    base: manifest.id,
    baseRevision,
    source: { type: source.type, ...(source.clusterId ? { clusterId: source.clusterId } : {}) },
    scope: Buffer.from(scope).toString('base64'),
    last: baseRevision,
    chain: CHAIN_START,
  };
  return { manifest, tip, ...(keys ? { keys } : {}) };
}

import type { JobConfig, KvdrConfig, RepositoryConfig, SourceConfig } from '../config/schema.js';
import { sourceScope } from '../config/scope.js';
import { artifactKey, newBackupId } from '../repository/layout.js';
import type { Manifest } from '../repository/manifest.js';
import { writeManifest } from '../repository/manifest-store.js';
import { openStore } from '../repository/open-store.js';
import { KvdrError, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { formatBytes } from '../util/table.js';
import { VERSION } from '../util/version.js';
import type { ArtifactSource } from './artifact-source.js';
import { openConsulExport } from './consul-export-source.js';
import { openConsulSnapshot } from './consul-snapshot-source.js';
import { openEtcdExport } from './etcd-export-source.js';
import { openEtcdSnapshot } from './etcd-snapshot-source.js';
import { storeArtifact } from './store-artifact.js';

export interface RunBackupOptions {
  config: KvdrConfig;
  job: string;
  logger: Logger;
  /** Aborting stops the run; nothing is listed for it. */
  signal?: AbortSignal;
  /** Raw bytes read so far; for progress displays and tests. */
  onProgress?: (rawBytes: number) => void;
  /** @defaultValue () => new Date() */
  now?: () => Date;
}

/**
 * Runs one backup job: artifact first, then its manifest (invariant 1). A run that fails at any
 * point leaves no manifest, so it is never listed, and nothing that would block the next run.
 */
export async function runBackup(options: RunBackupOptions): Promise<Manifest> {
  const { config, logger } = options;
  const now = options.now ?? (() => new Date());
  const job = findJob(config, options.job);
  const source = config.sources.find((s) => s.name === job.source) as SourceConfig;
  const repository = config.repositories.find((r) => r.name === job.repository) as RepositoryConfig;
  const scope = sourceScope(source);
  const startedAt = now();
  const id = newBackupId(job.name, startedAt);
  const log = logger.child({ job: job.name, backup: id });
  log.info({ kind: job.kind, source: source.name, repository: repository.name }, 'backup started');

  const store = openStore(repository);
  let artifact: ArtifactSource | undefined;
  try {
    artifact = await openSource(job, source, scope);
    // A Consul snapshot is a tar.gz already: a second gzip would cost CPU and save nothing.
    const compression = job.kind === 'consul-snapshot' ? 'none' : job.compression;
    const key = artifactKey(job.name, id, artifact.extension + (compression === 'gzip' ? '.gz' : ''));
    let lastLog = Date.now();
    const stored = await storeArtifact(store, key, artifact.bytes, {
      compression,
      describeSourceError: artifact.describeError,
      ...(options.signal ? { signal: options.signal } : {}),
      onProgress: (bytes) => {
        options.onProgress?.(bytes);
        if (Date.now() - lastLog >= 5_000) {
          lastLog = Date.now();
          log.info({ bytes }, `backup in progress: ${formatBytes(bytes)} read`);
        }
      },
    }).catch((err: unknown) => {
      if (options.signal?.aborted) throw new KvdrError(`backup ${id} of job ${job.name} was aborted; nothing was listed`);
      throw err;
    });
    const facts = artifact.facts();
    const put = stored.put;
    const manifest: Manifest = {
      formatVersion: 1,
      id,
      job: job.name,
      kind: job.kind,
      status: 'success',
      source: {
        name: source.name,
        type: source.type,
        endpoints: artifact.endpoints,
        ...(source.clusterId ? { clusterId: source.clusterId } : {}),
        ...(source.region ? { region: source.region } : {}),
      },
      scope: { prefix: scope },
      ...(facts.revision !== undefined ? { revision: facts.revision } : {}),
      ...(facts.raftIndex !== undefined ? { raftIndex: facts.raftIndex } : {}),
      ...(facts.records !== undefined ? { records: facts.records } : {}),
      bytes: { raw: stored.rawBytes, stored: stored.storedBytes },
      sha256: stored.sha256,
      compression,
      encryption: { ...(put.sse ? { sse: put.sse } : {}), clientSide: false },
      repository: {
        name: repository.name,
        type: repository.type,
        location: store.location,
        ...(repository.type === 's3' ? { bucket: repository.bucket, region: repository.region } : {}),
        key,
        ...(put.versionId ? { versionId: put.versionId } : {}),
        ...(put.etag ? { etag: put.etag } : {}),
      },
      ...(put.objectLock ? { objectLock: { mode: put.objectLock.mode, retainUntil: put.objectLock.retainUntil.toISOString() } } : {}),
      startedAt: startedAt.toISOString(),
      finishedAt: now().toISOString(),
      toolVersion: VERSION,
      details: facts.details,
    };
    await writeManifest(store, manifest);
    log.info(
      { bytes: manifest.bytes, records: manifest.records, revision: manifest.revision, key },
      `backup finished: ${formatBytes(stored.storedBytes)} stored in ${store.location}`,
    );
    return manifest;
  } catch (err) {
    log.error({ err }, 'backup failed');
    throw err;
  } finally {
    await artifact?.close().catch(() => undefined);
    await store.close();
  }
}

function findJob(config: KvdrConfig, name: string): JobConfig {
  const job = config.jobs.find((j) => j.name === name);
  if (!job) {
    const known = config.jobs.map((j) => j.name).join(', ') || 'none configured';
    throw new UsageError(`no job named "${name}" in the config (jobs: ${known})`);
  }
  return job;
}

async function openSource(job: JobConfig, source: SourceConfig, scope: string): Promise<ArtifactSource> {
  switch (job.kind) {
    case 'etcd-snapshot':
      return openEtcdSnapshot(source);
    case 'etcd-export':
      return openEtcdExport(source, scope);
    case 'consul-snapshot':
      return openConsulSnapshot(source);
    case 'consul-export':
      return openConsulExport(source, scope);
    default:
      throw new KvdrError(`job ${job.name}: backups of kind ${job.kind} are not built yet in this version of kvdr`);
  }
}

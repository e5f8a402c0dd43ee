import { isContinuousJob, type BackupKind, type JobConfig, type KvdrConfig, type RepositoryConfig, type SourceConfig } from '../config/schema.js';
import { sourceScope } from '../config/scope.js';
import type { Compression } from '../formats/inflate.js';
import { artifactKey, newBackupId } from '../repository/layout.js';
import type { Manifest } from '../repository/manifest.js';
import { writeManifest } from '../repository/manifest-store.js';
import type { ObjectStore } from '../repository/object-store.js';
import { openStore } from '../repository/open-store.js';
import { IntegrityError, KvdrError, UsageError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { formatBytes } from '../util/table.js';
import { VERSION } from '../util/version.js';
import type { ArtifactSource } from './artifact-source.js';
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
  /** Extra facts for the manifest (what triggered the run, its cron slot). */
  details?: Record<string, unknown>;
}

/** Runs one configured backup job (px-dumps jobs: see collectPxDumps). */
export async function runBackup(options: RunBackupOptions): Promise<Manifest> {
  const job = findJob(options.config, options.job);
  if (job.kind === 'px-dumps') throw new UsageError(`job ${job.name} collects PX dumps; it can store several backups per run (kvdr backup handles it)`);
  if (job.kind === 'restore-test') throw new UsageError(`job ${job.name} is a restore drill, not a backup (kvdr backup handles it)`);
  if (job.kind === 'verify') throw new UsageError(`job ${job.name} verifies backups, it does not take one (kvdr backup handles it)`);
  const source = options.config.sources.find((s) => s.name === job.source) as SourceConfig;
  const repository = options.config.repositories.find((r) => r.name === job.repository) as RepositoryConfig;
  const store = openStore(repository);
  try {
    return await takeBackup({
      ...options,
      store,
      repository,
      job: job.name,
      kind: job.kind,
      // A continuous job's run on its own (kvdr backup, or no leader following it) takes a base: a new chain starts there.
      produce: job.kind === 'etcd-continuous' ? 'etcd-export' : job.kind === 'consul-continuous' ? 'consul-export' : job.kind,
      source,
      scope: sourceScope(source),
      compression: job.compression,
      ...(isContinuousJob(job) ? { details: { ...options.details, role: 'base' } } : {}),
    });
  } finally {
    await store.close();
  }
}

/** The suffix a compressed artifact's key gets, so `gunzip` / `zstd -d` of a download gives the plain file. */
const COMPRESSED_SUFFIX: Record<Compression, string> = { gzip: '.gz', zstd: '.zst', none: '' };

export interface TakeBackupOptions extends Omit<RunBackupOptions, 'config' | 'job' | 'details'> {
  store: ObjectStore;
  repository: RepositoryConfig;
  job: string;
  /** What the manifest calls it. */
  kind: Manifest['kind'];
  /** Which producer makes the artifact (a safety backup is an export). */
  produce: BackupKind;
  /** An artifact opened by the caller (PX dump files), instead of one made from the source. */
  artifact?: ArtifactSource;
  source: SourceConfig;
  scope: string;
  compression: Compression;
  /** Extra facts for the manifest. */
  details?: Record<string, unknown>;
}

/**
 * Takes one backup into a store: artifact first, then its manifest (invariant 1). A run that fails
 * at any point leaves no manifest, so it is never listed, and nothing that would block the next run.
 */
export async function takeBackup(options: TakeBackupOptions): Promise<Manifest> {
  const { store, repository, source, scope } = options;
  const now = options.now ?? (() => new Date());
  const startedAt = now();
  const id = newBackupId(options.job, startedAt);
  const log = options.logger.child({ job: options.job, backup: id });
  log.info({ kind: options.kind, source: source.name, repository: repository.name }, 'backup started');

  let artifact: ArtifactSource | undefined;
  try {
    artifact = options.artifact ?? (await openSource(options.produce, source, scope));
    for (const warning of artifact.warnings ?? []) log.warn(warning);
    // A Consul snapshot is a tar.gz already: a second gzip (or zstd) would cost CPU and save nothing.
    const compression = options.produce === 'consul-snapshot' ? 'none' : options.compression;
    const key = artifactKey(options.job, id, artifact.extension + COMPRESSED_SUFFIX[compression]);
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
      if (options.signal?.aborted) throw new KvdrError(`backup ${id} of job ${options.job} was aborted; nothing was listed`);
      throw err;
    });
    const facts = artifact.facts();
    const put = stored.put;
    const manifest: Manifest = {
      formatVersion: 1,
      id,
      job: options.job,
      kind: options.kind,
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
      details: { ...facts.details, ...options.details, format: options.produce },
    };
    await writeManifest(store, manifest);
    log.info(
      { bytes: manifest.bytes, records: manifest.records, revision: manifest.revision, key },
      `backup finished: ${formatBytes(stored.storedBytes)} stored in ${store.location}`,
    );
    return manifest;
  } catch (err) {
    const failure = asBackupFailure(err);
    log.error({ err: failure }, 'backup failed');
    throw failure;
  } finally {
    await artifact?.close().catch(() => undefined);
  }
}

/**
 * A stream that fails its own check while it is being backed up (etcd's sha256 trailer, a Consul
 * archive's SHA256SUMS, a truncated stream) is a failed backup: exit 1 like any other, nothing listed.
 * So is an upload that S3 or the disk did not keep whole (its size checked right after the write): the
 * backup is never listed either way. The formats raise IntegrityError, which means exit 4; that code is
 * kept for listed backups that fail verification (verify, restore, inspect). The message is kept.
 */
function asBackupFailure(err: unknown): unknown {
  if (!(err instanceof IntegrityError)) return err;
  return new KvdrError(err.message, ExitCode.Failure, { cause: err });
}

export function findJob(config: KvdrConfig, name: string): JobConfig {
  const job = config.jobs.find((j) => j.name === name);
  if (!job) {
    const known = config.jobs.map((j) => j.name).join(', ') || 'none configured';
    throw new UsageError(`no job named "${name}" in the config (jobs: ${known})`);
  }
  return job;
}

/** Each kind's source is loaded when a job of that kind runs: an etcd job never loads the Consul client, nor a Consul job gRPC. */
async function openSource(kind: BackupKind, source: SourceConfig, scope: string): Promise<ArtifactSource> {
  switch (kind) {
    case 'etcd-snapshot':
      return (await import('./etcd-snapshot-source.js')).openEtcdSnapshot(source);
    case 'etcd-export':
      return (await import('./etcd-export-source.js')).openEtcdExport(source, scope);
    case 'consul-snapshot':
      return (await import('./consul-snapshot-source.js')).openConsulSnapshot(source);
    case 'consul-export':
      return (await import('./consul-export-source.js')).openConsulExport(source, scope);
    case 'px-dumps':
      throw new KvdrError('px-dumps jobs collect dump files: run them through collectPxDumps');
    case 'etcd-continuous':
    case 'consul-continuous':
      throw new KvdrError('continuous jobs take their bases through their ContinuousJob (kvdr serve)');
  }
}

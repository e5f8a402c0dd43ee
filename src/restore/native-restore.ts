import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { takeBackup } from '../backup/run-backup.js';
import type { SourceConfig } from '../config/schema.js';
import { consulAccess } from '../sources/consul/connect.js';
import { consulRequest } from '../sources/consul/http.js';
import type { KvTarget } from '../sources/kv-target.js';
import { KvdrError, oneLine, ScopeNotEmptyError, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { LocalArtifact } from './local-artifact.js';
import { alreadyRecorded, attemptSubject, recordRestoreEvent, type RestoreRepository } from './run-restore.js';

const run = promisify(execFile);

export interface EtcdMemberOptions {
  /** @defaultValue ./kvdr-restore-<backup> */
  dataDir: string;
  /** @defaultValue default */
  name: string;
  /** @defaultValue http://localhost:2380 */
  peerUrl: string;
  /** @defaultValue <name>=<peerUrl> */
  initialCluster?: string;
}

export interface NativeRestoreRequest {
  artifact: LocalArtifact;
  backupId: string;
  target: KvTarget;
  targetSource: SourceConfig;
  force: boolean;
  dryRun: boolean;
  safetyBackup: boolean;
  repository: RestoreRepository;
  logger: Logger;
  print: (text: string) => void;
  etcd: EtcdMemberOptions;
  /** What is restored, for the audit trail. */
  origin: Record<string, unknown>;
}

/**
 * Full-cluster restore of a native snapshot, behind the same rule as every restore: a native
 * restore replaces everything, so the scope is the whole keyspace of the target — keys there and no
 * --force: exit 3; with --force, a safety backup of all of it first. etcd: `etcdctl snapshot restore`
 * builds a member data directory and the member command is printed; Consul: `PUT /v1/snapshot`.
 * Its outcome is recorded as run-restore records one; a failure is recorded by the command around it.
 */
export async function runNativeRestore(request: NativeRestoreRequest): Promise<void> {
  const { target, artifact } = request;
  if (artifact.format !== 'etcd-snapshot' && artifact.format !== 'consul-snapshot') {
    throw new UsageError(`--mode native restores etcd or Consul snapshots; backup ${request.backupId} is a ${artifact.format} (use --mode keys)`);
  }
  const wanted = artifact.format === 'etcd-snapshot' ? 'etcd' : 'consul';
  if (request.targetSource.type !== wanted) throw new UsageError(`--mode native: a ${artifact.format} restores into ${wanted}, not ${request.targetSource.type}`);
  const subject = { ...attemptSubject(request), backup: request.backupId, mode: 'native' };

  const existing = await target.inspectScope(Buffer.alloc(0)).catch((err: unknown) => {
    if (wanted === 'etcd' && request.force) {
      request.logger.warn(`cannot reach ${target.description} (${oneLine(err)}); --force given, building the data directory anyway`);
      return { count: 0, examples: [] };
    }
    throw new KvdrError(`${oneLine(err)} — a native restore checks the target is empty first; pass --force if the old cluster is gone for good`);
  });
  if (request.dryRun) {
    request.print(`dry run: a native restore of ${request.backupId} would replace all ${existing.count} keys of ${target.description}`);
    await recordRestoreEvent(request, 'restore-dry-run', { ...subject, wouldReplace: existing.count });
    return;
  }
  if (existing.count > 0 && !request.force) {
    await recordRestoreEvent(request, 'restore-aborted', { ...subject, existing: existing.count });
    throw alreadyRecorded(
      new ScopeNotEmptyError(
        `${target.description}: holds ${existing.count} keys (e.g. ${existing.examples.join(', ')}) and a native restore replaces all of them; ` +
          'nothing was changed. Re-run with --force (a safety backup of them is taken first)',
      ),
    );
  }
  let safetyBackupId: string | undefined;
  if (existing.count > 0 && request.safetyBackup) {
    const safety = await takeBackup({
      store: request.repository.store,
      repository: request.repository.config,
      job: 'safety-backup',
      kind: 'safety-backup',
      produce: wanted === 'etcd' ? 'etcd-export' : 'consul-export',
      source: request.targetSource,
      scope: '',
      compression: 'gzip',
      logger: request.logger,
      details: { reason: 'restore-from-s3 --mode native --force', restoring: request.backupId },
    });
    safetyBackupId = safety.id;
  }
  if (wanted === 'etcd') await etcdDataDir(request);
  else await consulSnapshotRestore(request);
  await recordRestoreEvent(request, 'restore', { ...subject, replaced: existing.count, safetyBackupId });
}

async function etcdDataDir(request: NativeRestoreRequest): Promise<void> {
  const { etcd, artifact } = request;
  const dataDir = resolve(etcd.dataDir);
  if (await stat(dataDir).then(() => true, () => false)) throw new UsageError(`--data-dir ${dataDir} exists; etcdctl restores into a new directory`);
  const work = await mkdtemp(join(tmpdir(), 'kvdr-native-'));
  try {
    let file = artifact.path;
    if (artifact.gzip) {
      file = join(work, 'snapshot.db');
      await pipeline(createReadStream(artifact.path), createGunzip(), createWriteStream(file));
    }
    const cluster = etcd.initialCluster ?? `${etcd.name}=${etcd.peerUrl}`;
    await run('etcdctl', ['snapshot', 'restore', file, '--data-dir', dataDir, '--name', etcd.name, '--initial-cluster', cluster, '--initial-advertise-peer-urls', etcd.peerUrl], {
      env: { ...process.env, ETCDCTL_API: '3' },
    }).catch((err: { stderr?: string }) => {
      throw new KvdrError(`etcdctl snapshot restore failed: ${oneLine(err.stderr ?? err)}`);
    });
    request.print(
      [
        `restored backup ${request.backupId} into the data directory ${dataDir}`,
        'start the member with:',
        `  etcd --name ${etcd.name} --data-dir ${dataDir} --initial-cluster ${cluster} --initial-advertise-peer-urls ${etcd.peerUrl} \\`,
        `       --listen-peer-urls ${etcd.peerUrl} --listen-client-urls <client-url> --advertise-client-urls <client-url>`,
        'and repeat with each member\'s --name and peer URL (the same --initial-cluster) for a multi-member cluster.',
      ].join('\n'),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function consulSnapshotRestore(request: NativeRestoreRequest): Promise<void> {
  const access = consulAccess(request.targetSource);
  const response = await consulRequest(access, {
    method: 'PUT',
    path: '/snapshot',
    body: createReadStream(request.artifact.path),
    what: 'restore the snapshot',
    permission: 'a management token (acl = "write"), which snapshot restores require',
  });
  response.resume();
  request.print(`restored backup ${request.backupId} into ${request.target.description} (PUT /v1/snapshot)`);
}

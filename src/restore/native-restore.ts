import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import type { SourceConfig } from '../config/schema.js';
import { consulAccess } from '../sources/consul/connect.js';
import { consulRequest } from '../sources/consul/http.js';
import type { KvTarget, ScopeContents } from '../sources/kv-target.js';
import { KvdrError, oneLine, UsageError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { LocalArtifact } from './artifact.js';
import { inflated } from './local-artifact.js';

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

/** What a native write needs of the engine's request. */
export interface NativeRequest {
  target: KvTarget;
  targetSource: SourceConfig;
  force: boolean;
  logger: Logger;
  print: (text: string) => void;
  etcdMember?: EtcdMemberOptions;
}

/**
 * A native restore replaces everything, so its scope is the whole keyspace of the target; the
 * snapshot's kind decides which target it fits. When an etcd target cannot be reached and --force
 * was given, the old cluster is taken to be gone: the data directory is built anyway.
 */
export async function nativeExisting(request: NativeRequest, artifact: LocalArtifact): Promise<ScopeContents> {
  if (artifact.format !== 'etcd-snapshot' && artifact.format !== 'consul-snapshot') {
    throw new UsageError(`--mode native restores etcd or Consul snapshots; ${artifact.label} is a ${artifact.format} (use --mode keys)`);
  }
  const wanted = artifact.format === 'etcd-snapshot' ? 'etcd' : 'consul';
  if (request.targetSource.type !== wanted) throw new UsageError(`--mode native: a ${artifact.format} restores into ${wanted}, not ${request.targetSource.type}`);
  return request.target.inspectScope(Buffer.alloc(0)).catch((err: unknown) => {
    if (wanted === 'etcd' && request.force) {
      request.logger.warn(`cannot reach ${request.target.description} (${oneLine(err)}); --force given, building the data directory anyway`);
      return { count: 0, examples: [] };
    }
    throw new KvdrError(`${oneLine(err)} — a native restore checks the target is empty first; pass --force if the old cluster is gone for good`);
  });
}

/** The write of a native restore: etcd — a new member data directory (the command to start it is printed); Consul — PUT /v1/snapshot. */
export async function nativeWrite(request: NativeRequest, artifact: LocalArtifact, backupId: string): Promise<void> {
  if (artifact.format === 'etcd-snapshot') await etcdDataDir(request, artifact, backupId);
  else await consulSnapshotRestore(request, artifact, backupId);
}

async function etcdDataDir(request: NativeRequest, artifact: LocalArtifact, backupId: string): Promise<void> {
  const etcd = request.etcdMember ?? { dataDir: `./kvdr-restore-${backupId}`, name: 'default', peerUrl: 'http://localhost:2380' };
  const dataDir = resolve(etcd.dataDir);
  if (await stat(dataDir).then(() => true, () => false)) throw new UsageError(`--data-dir ${dataDir} exists; etcdctl restores into a new directory`);
  const work = await mkdtemp(join(tmpdir(), 'kvdr-native-'));
  try {
    let file = artifact.path;
    if (artifact.compression !== 'none') {
      file = join(work, 'snapshot.db');
      await pipeline(inflated(artifact), createWriteStream(file));
    }
    const cluster = etcd.initialCluster ?? `${etcd.name}=${etcd.peerUrl}`;
    await run('etcdctl', ['snapshot', 'restore', file, '--data-dir', dataDir, '--name', etcd.name, '--initial-cluster', cluster, '--initial-advertise-peer-urls', etcd.peerUrl], {
      env: { ...process.env, ETCDCTL_API: '3' },
    }).catch((err: { stderr?: string }) => {
      throw new KvdrError(`etcdctl snapshot restore failed: ${oneLine(err.stderr ?? err)}`);
    });
    request.print(
      [
        `restored backup ${backupId} into the data directory ${dataDir}`,
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

async function consulSnapshotRestore(request: NativeRequest, artifact: LocalArtifact, backupId: string): Promise<void> {
  const access = consulAccess(request.targetSource);
  const response = await consulRequest(access, {
    method: 'PUT',
    path: '/snapshot',
    body: createReadStream(artifact.path),
    what: 'restore the snapshot',
    permission: 'a management token (acl = "write"), which snapshot restores require',
  });
  response.resume();
  request.print(`restored backup ${backupId} into ${request.target.description} (PUT /v1/snapshot)`);
}

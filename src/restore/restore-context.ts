import { access } from 'node:fs/promises';
import { auditRepository } from '../audit/audit-repository.js';
import { loadConfig, resolveConfigPath } from '../config/loader.js';
import type { KvdrConfig, RepositoryConfig, SourceConfig } from '../config/schema.js';
import { openStore } from '../repository/open-store.js';
import { ConsulTarget } from '../sources/consul/consul-target.js';
import type { KvdbEndpoint } from '../sources/endpoint.js';
import { EtcdTarget } from '../sources/etcd/etcd-target.js';
import type { KvTarget } from '../sources/kv-target.js';
import type { ObjectStore } from '../repository/object-store.js';

/** The repository a restore keeps its safety backup and audit events in. */
export interface RestoreRepository {
  store: ObjectStore;
  config: RepositoryConfig;
}

/**
 * The target of a restore and how to reach it again for the safety backup. Credentials come from a
 * configured source that shares an endpoint with the target, else from the etcdctl / Consul environment.
 */
export function openTarget(endpoint: KvdbEndpoint, config: KvdrConfig | undefined): { target: KvTarget; source: SourceConfig } {
  const known = config?.sources.find((s) => s.type === endpoint.type && s.endpoints.some((u) => endpoint.urls.includes(u.replace(/\/+$/, ''))));
  const source: SourceConfig = {
    name: 'restore-target',
    type: endpoint.type,
    endpoints: endpoint.urls,
    stale: false,
    ...(known?.auth ? { auth: known.auth } : {}),
    ...(known?.tls ? { tls: known.tls } : {}),
    ...(known?.token ? { token: known.token } : {}),
    ...(known?.datacenter ? { datacenter: known.datacenter } : {}),
    // A cluster started with another --max-request-bytes / kv_max_value_size: its configured limits.
    ...(known?.maxRequestBytes !== undefined ? { maxRequestBytes: known.maxRequestBytes } : {}),
    ...(known?.maxValueBytes !== undefined ? { maxValueBytes: known.maxValueBytes } : {}),
  };
  return { target: targetFor(source), source };
}

/** A live cluster to restore into, reached as a configured source is. */
export function targetFor(source: SourceConfig): KvTarget {
  return source.type === 'etcd' ? new EtcdTarget(source) : new ConsulTarget(source);
}

export const DEFAULT_SAFETY_DIR = '/var/lib/kvdr/safety-backups';

/**
 * Where safety backups and audit events of a restore go: the config's audit repository (else its
 * first), or, with no config at all, a local directory (KVDR_SAFETY_DIR, default /var/lib/kvdr/safety-backups).
 */
export function restoreRepository(config: KvdrConfig | undefined, env: NodeJS.ProcessEnv = process.env): RestoreRepository {
  const chosen = config ? auditRepository(config) : undefined;
  const repository = chosen ?? { name: 'local-safety', type: 'fs' as const, path: env['KVDR_SAFETY_DIR'] ?? DEFAULT_SAFETY_DIR };
  return { store: openStore(repository), config: repository };
}

/** Loads the config when one was named or exists at the default path; a restore can run without one. */
export async function optionalConfig(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<KvdrConfig | undefined> {
  const path = resolveConfigPath(flag, env);
  const named = flag !== undefined || (env['KVDR_CONFIG'] ?? '') !== '';
  if (!named && !(await access(path).then(() => true, () => false))) return undefined;
  return loadConfig(path, env);
}

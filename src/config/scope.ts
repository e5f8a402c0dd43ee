import type { SourceConfig } from './schema.js';

/**
 * The cluster domain of a Portworx cluster: every key Portworx keeps for it, and every key of its KVDB
 * dumps (which are relative to it), lives under `pwx/<clusterId>/`. The one place that rule is written.
 */
export function clusterScope(clusterId: string): string {
  return `pwx/${clusterId}/`;
}

/** The key prefix a source's backups cover: its prefix, else `pwx/<clusterId>/`, else everything. */
export function sourceScope(source: Pick<SourceConfig, 'prefix' | 'clusterId'>): string {
  if (source.prefix !== undefined) return source.prefix;
  if (source.clusterId !== undefined) return clusterScope(source.clusterId);
  return '';
}

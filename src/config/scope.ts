import type { SourceConfig } from './schema.js';

/** The key prefix a source's backups cover: its prefix, else `pwx/<clusterId>/`, else everything. */
export function sourceScope(source: Pick<SourceConfig, 'prefix' | 'clusterId'>): string {
  if (source.prefix !== undefined) return source.prefix;
  if (source.clusterId !== undefined) return `pwx/${source.clusterId}/`;
  return '';
}

import { randomBytes } from 'node:crypto';

/**
 * Where things live in a repository. The whole history can be rebuilt from a listing:
 *
 *   data/<job>/<id>.<ext>         artifacts (write-once)
 *   manifests/<job>/<id>.json     one per successful backup, written after its artifact (write-once)
 *   audit/<seq>.json              the hash-chained audit trail (write-once, numbered from 1)
 *
 * Ids start with the UTC start time, so they sort by time within and across jobs.
 */
export const MANIFESTS = 'manifests/';
export const DATA = 'data/';
export const AUDIT = 'audit/';

export function newBackupId(job: string, startedAt: Date): string {
  const stamp = startedAt.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${job}-${randomBytes(3).toString('hex')}`;
}

export function manifestKey(job: string, id: string): string {
  return `${MANIFESTS}${job}/${id}.json`;
}

export function artifactKey(job: string, id: string, extension: string): string {
  return `${DATA}${job}/${id}${extension}`;
}

/** The job and id a manifest key names, or undefined for anything else under manifests/. */
export function parseManifestKey(key: string): { job: string; id: string } | undefined {
  const match = /^manifests\/([^/]+)\/([^/]+)\.json$/.exec(key);
  return match ? { job: match[1] as string, id: match[2] as string } : undefined;
}

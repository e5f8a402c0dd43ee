import { randomBytes } from 'node:crypto';

/**
 * Where things live in a repository. The whole history can be rebuilt from a listing:
 *
 *   data/<job>/<id>.<ext>         artifacts (write-once)
 *   manifests/<job>/<id>.json     one per successful backup, written after its artifact (write-once)
 *   audit/<seq>.json              the hash-chained audit trail (write-once, numbered from 1)
 *   segments/<job>/<base>/<first>.seg          a continuous job's change segment from revision <first>
 *   segments/<job>/<base>/<first>-<last>.seg   a merged segment covering <first>..<last>
 *
 * A change segment's key is claimed by its first revision alone: two writers resuming from the same
 * durable point (a deposed leader and its successor) race for the same key, and the write-once put lets
 * exactly one win, so the chain can never hold two segments that overlap. Revisions are zero-padded to
 * 20 digits so a listing returns a chain in revision order.
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

export const SEGMENTS = 'segments/';
const REVISION_DIGITS = 20;

const pad = (n: number): string => String(n).padStart(REVISION_DIGITS, '0');

/** The listing prefix of one job's chains, or of one chain. */
export function segmentPrefix(job: string, base?: string): string {
  return base === undefined ? `${SEGMENTS}${job}/` : `${SEGMENTS}${job}/${base}/`;
}

/** A small segment's key: claimed by its first revision (see above). */
export function segmentKey(job: string, base: string, first: number): string {
  return `${segmentPrefix(job, base)}${pad(first)}.seg`;
}

/** A merged segment's key: written once, from segments already in the chain, so its range is known. */
export function mergedSegmentKey(job: string, base: string, first: number, last: number): string {
  return `${segmentPrefix(job, base)}${pad(first)}-${pad(last)}.seg`;
}

export interface SegmentKey {
  job: string;
  base: string;
  first: number;
  /** Known from the key for merged segments; a small segment ends where the next one starts. */
  last?: number;
}

export function parseSegmentKey(key: string): SegmentKey | undefined {
  const match = /^segments\/([^/]+)\/([^/]+)\/(\d{20})(?:-(\d{20}))?\.seg$/.exec(key);
  if (!match) return undefined;
  return {
    job: match[1] as string,
    base: match[2] as string,
    first: Number(match[3]),
    ...(match[4] !== undefined ? { last: Number(match[4]) } : {}),
  };
}

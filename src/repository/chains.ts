import { ObjectNotFoundError } from '../util/errors.js';
import { parseSegmentKey, segmentPrefix } from './layout.js';
import { baseRevision, type Manifest } from './manifest.js';
import type { ObjectStore } from './object-store.js';

/** One stored change segment, as a listing alone describes it. */
export interface StoredSegment {
  key: string;
  base: string;
  first: number;
  /** From the key for merged segments; for a small one, where the next segment of the chain starts, minus one. */
  last?: number;
  merged: boolean;
  size: number;
  lastModified: Date;
}

/** The segments of one chain (one base), in the order a replay reads them. */
export interface ChainPath {
  base: string;
  /** The segments to read, contiguous from the base's revision + 1. */
  segments: StoredSegment[];
  /** Segments left out of the path because a merged one covers them (retired by the next merge pass). */
  covered: StoredSegment[];
  /**
   * Segments that do not continue the path (a segment is missing before them): the chain is broken
   * there, and nothing after the break can be replayed.
   */
  stranded: StoredSegment[];
}

/**
 * Whether a chain goes on past a newer base of its job: it has a small segment starting past that
 * base's revision and written after the base was taken. That happens when a base is taken on its own
 * (`kvdr backup` of a continuous job) while `kvdr serve` follows this chain, which then holds the
 * changes after that base: prune keeps it, a point-in-time restore past that base replays it, and
 * `kvdr changes` reads it past that base. A chain that merely reached further before its source went
 * back (a restored Consul, a new etcd cluster: the next base has lower revisions) was written before
 * the newer base, so it does not go on past it. Merged segments say nothing here: a merge rewrites old
 * segments at any time.
 */
export function goesOnPast(segments: readonly StoredSegment[], newer: Manifest): boolean {
  const revision = baseRevision(newer);
  const takenAt = Date.parse(newer.finishedAt);
  return segments.some((s) => !s.merged && s.first > revision && s.lastModified.getTime() > takenAt);
}

/** Every chain of a job, by base id, from one listing; segment lists in key (revision) order. */
export async function listSegments(store: ObjectStore, job: string): Promise<Map<string, StoredSegment[]>> {
  const chains = new Map<string, StoredSegment[]>();
  for await (const info of store.list(segmentPrefix(job))) {
    const parsed = parseSegmentKey(info.key);
    if (!parsed || parsed.job !== job) continue;
    const segment: StoredSegment = {
      key: info.key,
      base: parsed.base,
      first: parsed.first,
      ...(parsed.last !== undefined ? { last: parsed.last } : {}),
      merged: parsed.last !== undefined,
      size: info.size,
      lastModified: info.lastModified,
    };
    const list = chains.get(parsed.base) ?? [];
    list.push(segment);
    chains.set(parsed.base, list);
  }
  return chains;
}

/**
 * The path through one chain's segments from `from` (the base's revision + 1): at each revision the
 * longest merged segment that starts there, else the small one. A small segment ends where the next
 * segment of the chain starts; the path's last small segment's end is known only from its header.
 */
export function chainPath(base: string, segments: readonly StoredSegment[], from: number): ChainPath {
  const starts = [...new Set(segments.map((s) => s.first))].sort((a, b) => a - b);
  const nextStart = (after: number): number | undefined => starts.find((s) => s > after);
  const path: StoredSegment[] = [];
  const used = new Set<string>();
  let position = from;
  for (;;) {
    const here = segments.filter((s) => s.first === position);
    const merged = here.filter((s) => s.merged).sort((a, b) => (b.last ?? 0) - (a.last ?? 0))[0];
    const chosen = merged ?? here[0];
    if (!chosen) break;
    const end = chosen.last ?? (nextStart(position) ?? 0) - 1;
    const step: StoredSegment = end >= position ? { ...chosen, last: end } : { ...chosen };
    path.push(step);
    used.add(chosen.key);
    if (step.last === undefined) break; // the open tail
    position = step.last + 1;
  }
  // The open tail covers everything from its start on; a stranded segment starts past the path's end.
  const end = path.length === 0 ? from - 1 : (path.at(-1)?.last ?? Number.POSITIVE_INFINITY);
  const covered = segments.filter((s) => !used.has(s.key) && s.first <= end && s.first >= from);
  const stranded = segments.filter((s) => !used.has(s.key) && !covered.includes(s));
  return { base, segments: path, covered, stranded };
}

/**
 * Whether a read of `path` failed because one of its segments is gone. The leader merges old segments
 * at any time and retires the small ones once the merged one is stored, so a reader whose listing
 * predates a merge can meet this; it should list the chain again (currentPath) and read that path, once.
 * Gone a second time is damage, not a merge.
 */
export function segmentRetired(err: unknown, path: Pick<ChainPath, 'segments'>): boolean {
  return err instanceof ObjectNotFoundError && path.segments.some((segment) => segment.key === err.key);
}

/** A chain's path as the repository holds it now: one fresh listing. */
export async function currentPath(store: ObjectStore, job: string, base: string, from: number): Promise<ChainPath> {
  return chainPath(base, (await listSegments(store, job)).get(base) ?? [], from);
}

import { readSegment } from '../../formats/change-segment-reader.js';
import { encodeSegment, type ChangeEvent, type SegmentHeader } from '../../formats/change-segment.js';
import { compressBuffer } from '../../formats/compression.js';
import type { Compression } from '../../formats/inflate.js';
import { openSegment, readChain } from '../../repository/chain-reader.js';
import { readCatalog } from '../../repository/catalog.js';
import { chainPath, listSegments, type StoredSegment } from '../../repository/chains.js';
import { mergedSegmentKey } from '../../repository/layout.js';
import { baseRevision } from '../../repository/manifest.js';
import type { ObjectStore } from '../../repository/object-store.js';
import { IntegrityError, ObjectExistsError } from '../../util/errors.js';

export interface MergeOptions {
  store: ObjectStore;
  job: string;
  base: string;
  baseRevision: number;
  /** Only segments uploaded longer ago than this are merged. */
  olderThanMs: number;
  /** A merged segment holds at most about this many stored bytes. */
  targetBytes: number;
  compression: Compression;
  /** Appends the `segments-merged` event; called after the merged segment is verified, before any small one is deleted. */
  record: (subject: Record<string, unknown>) => Promise<void>;
  /** @defaultValue Date.now */
  now?: () => number;
}

/**
 * Keeps a chain's object count bounded: runs of small segments older than `olderThanMs` become one
 * merged segment each (up to `targetBytes`). Never the chain's newest segment (its writer resumes from
 * it). The order keeps the chain whole at every moment:
 *
 *   read the run (linked and checked) → encode the same events → its chain value must equal the run's
 *   → write it once → read it back and check → record → only then delete the small segments
 *
 * Between the write and the deletes both exist; a replay takes the merged one (chainPath). Returns how
 * many small segments were retired.
 */
export async function mergeSegments(options: MergeOptions): Promise<number> {
  const { store, job, base } = options;
  const now = (options.now ?? Date.now)();
  const segments = (await listSegments(store, job)).get(base) ?? [];
  const path = chainPath(base, segments, options.baseRevision + 1);
  const runs = mergeRuns(path.segments.slice(0, -1), now - options.olderThanMs, options.targetBytes);
  let retired = 0;
  for (const run of runs) {
    const first = run[0] as StoredSegment;
    const lastSegment = run.at(-1) as StoredSegment;
    const events: ChangeEvent[] = [];
    const chain = readChain(store, { segments: run }, first.first - 1, {}, 'mid-chain');
    for await (const event of chain.events) events.push(event);
    const end = chain.end();
    const { job: owner, source, scope, baseRevision, previous } = await segmentHeader(store, first);
    const { bytes, chain: merged } = encodeSegment(
      { job: owner, source, scope, base, baseRevision, first: first.first, last: end.revision, previous, durableAt: end.durableAt ?? new Date(now).toISOString() },
      events,
    );
    if (merged !== end.chain) throw new IntegrityError(`merging ${first.key}..${lastSegment.key}: the merged events do not reproduce the chain value; nothing was changed`);
    const key = mergedSegmentKey(job, base, first.first, end.revision);
    try {
      const body = await compressBuffer(bytes, options.compression, `job ${job}`);
      await store.put(key, body, { contentLength: body.length, contentType: 'application/x-ndjson' });
    } catch (err) {
      if (!(err instanceof ObjectExistsError)) throw err; // merged before (an earlier pass stopped before its deletes)
    }
    const check = readSegment(await openSegment(store, { key }), `segment ${key}`);
    const header = await check.header();
    for await (const _ of check.events);
    if (header.first !== first.first || header.last !== end.revision || header.previous !== previous || check.chain() !== end.chain) {
      throw new IntegrityError(`merged segment ${key} does not read back as written; the small segments are kept`);
    }
    await options.record({ job, base, first: first.first, last: end.revision, key, merged: run.length, events: events.length });
    for (const segment of run) await store.delete(segment.key);
    retired += run.length;
  }
  return retired;
}

/** Merges old segments in every chain of a job that has segments (see mergeSegments); how many were retired. */
export async function mergeJobChains(options: Omit<MergeOptions, 'base' | 'baseRevision'>): Promise<number> {
  const chains = await listSegments(options.store, options.job);
  let retired = 0;
  for (const base of (await readCatalog(options.store, { job: options.job })).filter((m) => chains.has(m.id))) {
    retired += await mergeSegments({ ...options, base: base.id, baseRevision: baseRevision(base) });
  }
  return retired;
}

/** Consecutive small segments older than `before`, grouped up to `targetBytes`; only groups of two or more. */
function mergeRuns(segments: readonly StoredSegment[], before: number, targetBytes: number): StoredSegment[][] {
  const runs: StoredSegment[][] = [];
  let current: StoredSegment[] = [];
  let bytes = 0;
  const close = (): void => {
    if (current.length >= 2) runs.push(current);
    current = [];
    bytes = 0;
  };
  for (const segment of segments) {
    if (segment.merged || segment.lastModified.getTime() >= before) {
      close();
      continue;
    }
    if (bytes + segment.size > targetBytes && current.length > 0) close();
    current.push(segment);
    bytes += segment.size;
  }
  close();
  return runs;
}

/** A segment's header alone; the rest of the object is not read. */
async function segmentHeader(store: ObjectStore, segment: StoredSegment): Promise<SegmentHeader> {
  const input = await openSegment(store, segment);
  try {
    return await readSegment(input, `segment ${segment.key}`).header();
  } finally {
    input.destroy();
  }
}

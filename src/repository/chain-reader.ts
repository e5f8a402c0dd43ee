import { Readable } from 'node:stream';
import { readSegment } from '../formats/change-segment-reader.js';
import { CHAIN_START, type ChangeEvent, type SegmentHeader } from '../formats/change-segment.js';
import { compressionOf } from '../formats/compression.js';
import { inflate } from '../formats/inflate.js';
import { IntegrityError } from '../util/errors.js';
import type { ChainPath, StoredSegment } from './chains.js';
import type { ObjectStore } from './object-store.js';

/**
 * The most a segment may inflate to. Writers cut segments at `segmentBytes` (8 MiB by default, at most
 * 256 MiB by the config schema) plus one batch of changes; anything far larger is damage or a bomb.
 */
export const MAX_SEGMENT_INFLATED_BYTES = 1024 ** 3;

/** Stop replaying a chain at the first change after this revision, or observed after this time (Unix ms). */
export interface ChainLimit {
  revision?: number;
  at?: number;
}

/** Where a replay of a chain ended. */
export interface ChainEnd {
  /** The last revision the segments read cover (the base's revision when none were read). */
  revision: number;
  /** The chain value there. */
  chain: string;
  /** When the last segment read was cut; undefined when no segment was read. */
  durableAt?: string;
  /** True when the limit stopped the replay before the end of the chain. */
  limited: boolean;
  /** The last change replayed (revision and time), if any. */
  lastChange?: { revision: number; at: number };
}

/**
 * Reads a chain's segments in order and yields their changes, checking that each segment continues the
 * one before: its first revision follows the previous last, its `previous` is the chain value reached so
 * far, its own trailer matches. A segment that does not link is a broken chain: IntegrityError, naming
 * the revision where it breaks. Memory holds one line at a time.
 */
export function readChain(
  store: ObjectStore,
  path: Pick<ChainPath, 'segments'>,
  baseRevision: number,
  limit: ChainLimit = {},
  /**
   * 'mid-chain': the path starts in the middle of a chain (a merge reads a run of segments); `baseRevision`
   * is then the revision before its first segment, whose own `previous` is taken as the chain value there.
   */
  start: 'base' | 'mid-chain' = 'base',
): { events: AsyncIterable<ChangeEvent>; end(): ChainEnd } {
  const end: ChainEnd = { revision: baseRevision, chain: CHAIN_START, limited: false };
  async function* events(): AsyncIterable<ChangeEvent> {
    for (const segment of path.segments) {
      const reader = readSegment(await openSegment(store, segment), `segment ${segment.key}`);
      const header = await reader.header();
      if (start === 'mid-chain' && segment === path.segments[0]) end.chain = header.previous;
      checkLink(segment, header, end);
      for await (const event of reader.events) {
        if ((limit.revision !== undefined && event.revision > limit.revision) || (limit.at !== undefined && event.at > limit.at)) {
          end.limited = true;
          // Everything before this change is in: the state stands at the revision just before it.
          end.revision = Math.max(end.revision, event.revision - 1);
          if (limit.revision !== undefined) end.revision = Math.min(end.revision, limit.revision);
          return;
        }
        end.lastChange = { revision: event.revision, at: event.at };
        end.revision = event.revision;
        yield event;
      }
      end.revision = header.last;
      end.chain = reader.chain();
      end.durableAt = header.durableAt;
      if (limit.revision !== undefined && header.last >= limit.revision) {
        end.revision = limit.revision;
        end.limited = header.last > limit.revision;
        return;
      }
    }
  }
  return { events: events(), end: () => ({ ...end }) };
}

/** One segment's bytes, inflated per its first bytes, capped. */
export async function openSegment(store: ObjectStore, segment: Pick<StoredSegment, 'key'>): Promise<Readable> {
  const raw = await store.get(segment.key);
  const iterator = raw[Symbol.asyncIterator]();
  const first = await iterator.next();
  const head = first.done ? Buffer.alloc(0) : Buffer.from(first.value as Buffer);
  async function* rest(): AsyncIterable<Buffer> {
    try {
      if (!first.done) yield head;
      for (;;) {
        const item = await iterator.next();
        if (item.done) return;
        yield item.value as Buffer;
      }
    } finally {
      raw.destroy(); // a reader that stops early must not leave the GET's socket open
    }
  }
  const label = `segment ${segment.key}`;
  return inflate(Readable.from(rest(), { objectMode: false }), { compression: compressionOf(head), maxBytes: MAX_SEGMENT_INFLATED_BYTES, label });
}

function checkLink(segment: StoredSegment, header: SegmentHeader, end: ChainEnd): void {
  const where = `segment ${segment.key}`;
  if (header.base !== segment.base) throw new IntegrityError(`${where}: its header names base ${header.base}, its key ${segment.base}; the segment is misplaced or altered`);
  if (header.first !== end.revision + 1 || header.first !== segment.first) {
    throw new IntegrityError(`${where}: starts at revision ${header.first}, but the chain reached ${end.revision}; the chain is broken there (a segment is missing or was altered)`);
  }
  if (header.previous !== end.chain) {
    throw new IntegrityError(`${where}: does not continue the chain (its previous chain value differs); the chain is broken at revision ${header.first}`);
  }
  if (segment.last !== undefined && header.last !== segment.last && segment.merged) {
    throw new IntegrityError(`${where}: its key says it ends at ${segment.last}, its header at ${header.last}; the segment is damaged`);
  }
}

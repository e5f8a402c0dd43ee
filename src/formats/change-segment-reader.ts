import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { chainNext, SEGMENT_FORMAT, SEGMENT_VERSION, type ChangeEvent, type SegmentHeader, type SegmentTrailer } from './change-segment.js';
import { DEFAULT_MAX_RECORD_BYTES, type ReaderLimits } from './limits.js';
import type { Line } from './line-reader.js';
import { ndjsonLines } from './ndjson-lines.js';
import { decodeBase64Strict } from './text.js';

export interface SegmentReader {
  /** The header, read before the first event. Trust it once `events` has been read to its end. */
  header(): Promise<SegmentHeader>;
  /**
   * The events in order; the iteration fails on the first damaged line (bad JSON or base64, a key
   * outside the scope, a revision outside the header's range or going backwards) and at the end if the
   * trailer's count, header sha256 or chain value does not match.
   */
  events: AsyncIterable<ChangeEvent>;
  /** The chain value after the last event: valid once `events` has ended. */
  chain(): string;
}

const LEASE = /^\d{1,20}$/;

/** Reads one change segment (already inflated), checking it against itself as it goes. */
export function readSegment(input: Readable, label: string, limits: ReaderLimits = {}): SegmentReader {
  const { next, take, parse, damaged, close, lineNumber } = ndjsonLines(input, label, limits.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES, 'change segment');

  let scope: Buffer = Buffer.alloc(0);
  let headerSha256 = '';
  let chain = '';
  let headerPromise: Promise<SegmentHeader> | undefined;
  const header = (): Promise<SegmentHeader> =>
    (headerPromise ??= (async () => {
      const first = await next();
      if (!first) throw new IntegrityError(`${label}: is empty; not a kvdr change segment`);
      const value = parse(first);
      if (value['format'] !== SEGMENT_FORMAT) throw new IntegrityError(`${label}: not a kvdr change segment (no ${SEGMENT_FORMAT} header on line 1)`);
      if (value['version'] !== SEGMENT_VERSION) throw new IntegrityError(`${label}: change segment version ${String(value['version']).slice(0, 20)} is not supported by this kvdr (it reads ${SEGMENT_VERSION}); upgrade kvdr`);
      const decoded = typeof value['scope'] === 'string' ? decodeBase64Strict(value['scope']) : undefined;
      if (!decoded) throw damaged('(the header) has a scope that is not base64');
      for (const field of ['baseRevision', 'first', 'last'] as const) if (!isCount(value[field])) throw damaged(`(the header) has a ${field} that is not a non-negative integer`);
      if ((value['first'] as number) > (value['last'] as number) + 1) throw damaged('(the header) has first > last + 1');
      if (!isHex64(value['previous'])) throw damaged('(the header) has no valid previous chain value');
      if (typeof value['base'] !== 'string' || typeof value['job'] !== 'string') throw damaged('(the header) names no base or job');
      scope = decoded;
      headerSha256 = createHash('sha256').update(first.bytes).digest('hex');
      chain = value['previous'];
      return value as unknown as SegmentHeader;
    })());

  async function* events(): AsyncIterable<ChangeEvent> {
    try {
      const { first, last } = await header();
      let count = 0;
      let revision = 0;
      for (;;) {
        const line = take() ?? (await next());
        if (line === undefined) throw new IntegrityError(`${label}: ends after line ${lineNumber()} without a trailer; the change segment is truncated`);
        const value = parse(line);
        if ('trailer' in value) {
          checkTrailer(value as unknown as SegmentTrailer, count, line);
          if ((await next()) !== undefined) throw damaged('follows the trailer');
          return;
        }
        const event = toEvent(value);
        if (event.revision < revision) throw damaged(`goes back in revision (${event.revision} after ${revision})`);
        if (event.revision < first || event.revision > last) throw damaged(`has revision ${event.revision}, outside the segment's ${first}..${last}`);
        revision = event.revision;
        chain = chainNext(chain, line.bytes);
        count++;
        yield event;
      }
    } finally {
      await close();
    }
  }

  function checkTrailer({ trailer }: SegmentTrailer, count: number, line: Line): void {
    if (typeof trailer !== 'object' || trailer === null || !isCount(trailer.count) || !isHex64(trailer.chain)) throw damaged('is not a valid trailer');
    if (!line.terminated) throw new IntegrityError(`${label}: the trailer lacks its final newline; the change segment is truncated`);
    if (trailer.headerSha256 !== headerSha256) throw new IntegrityError(`${label}: the header does not match the trailer's headerSha256; the header was altered or damaged`);
    if (trailer.count !== count) throw new IntegrityError(`${label}: the trailer says ${trailer.count} events, the segment holds ${count}; the change segment is damaged`);
    if (trailer.chain !== chain) throw new IntegrityError(`${label}: the events do not match the trailer's chain value; the change segment is damaged`);
  }

  function toEvent(value: Record<string, unknown>): ChangeEvent {
    const key = typeof value['key'] === 'string' ? decodeBase64Strict(value['key']) : undefined;
    if (!key) throw damaged('has a key that is not base64');
    if (key.length < scope.length || scope.compare(key, 0, scope.length) !== 0) throw damaged('has a key outside the scope');
    if (!isCount(value['rev']) || !isCount(value['at'])) throw damaged('has no valid rev or at');
    const revision = value['rev'];
    const at = value['at'];
    if (value['op'] === 'del') return { op: 'del', key, revision, at };
    if (value['op'] !== 'put') throw damaged('is neither a put nor a del');
    const data = typeof value['value'] === 'string' ? decodeBase64Strict(value['value']) : undefined;
    if (!data) throw damaged('has a value that is not base64');
    if (!isCount(value['create']) || !isCount(value['ver'])) throw damaged('has no valid create or ver');
    if (typeof value['lease'] !== 'string' || !LEASE.test(value['lease'])) throw damaged('has a lease that is not a decimal id');
    if (value['flags'] !== undefined && !isCount(value['flags'])) throw damaged('has flags that are not a non-negative integer');
    return {
      op: 'put',
      key,
      value: data,
      revision,
      createRevision: value['create'],
      version: value['ver'],
      lease: value['lease'],
      ...(value['flags'] !== undefined ? { flags: value['flags'] } : {}),
      at,
    };
  }

  return { header, events: events(), chain: () => chain };
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0;
}

function isHex64(s: unknown): s is string {
  return typeof s === 'string' && /^[0-9a-f]{64}$/.test(s);
}

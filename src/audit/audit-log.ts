import { createHash, randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { AUDIT } from '../repository/layout.js';
import type { ObjectStore } from '../repository/object-store.js';
import { ObjectExistsError, ObjectNotFoundError } from '../util/errors.js';
import { readAll } from '../util/streams.js';
import { VERSION } from '../util/version.js';

export type AuditEventType =
  | 'backup'
  | 'backup-failed'
  | 'restore'
  | 'restore-aborted'
  | 'restore-dry-run'
  | 'restore-failed'
  /** A restore that failed after its first write, and whose scope was put back as it was. */
  | 'restore-rolled-back'
  | 'verify'
  | 'prune'
  | 'drill'
  /** A continuous job could not keep its change log unbroken (compaction, repository outage): the revisions it lost, and why. */
  | 'continuity-gap'
  /** A continuous job merged old change segments into one (the small ones are retired after it is verified). */
  | 'segments-merged';

/** One entry of the append-only trail (invariant 6). `prev` chains it to the entry before. */
export interface AuditEvent {
  seq: number;
  id: string;
  time: string;
  type: AuditEventType;
  actor: { user: string; host: string; tool: string };
  subject: Record<string, unknown>;
  /** sha256 of the previous event's stored bytes; 64 zeros for the first. */
  prev: string;
}

export const GENESIS = '0'.repeat(64);
const SEQ_DIGITS = 12;
export const auditKey = (seq: number): string => `${AUDIT}${String(seq).padStart(SEQ_DIGITS, '0')}.json`;

interface Tail {
  seq: number;
  hash: string;
}

/**
 * The last event this process wrote or read, per repository location. It saves listing the whole
 * trail on every append; when another writer got there first, write-once refuses the put and the tail
 * is read again from a listing.
 */
const knownTails = new Map<string, Tail>();

/**
 * Appends an event to the trail in a repository. Events are write-once objects numbered in order;
 * two writers racing for the same number both see write-once refuse one of them, which re-reads the
 * tail and tries the next number, so the chain never forks.
 */
export async function appendAuditEvent(
  store: ObjectStore,
  type: AuditEventType,
  subject: Record<string, unknown>,
  now: () => Date = () => new Date(),
): Promise<AuditEvent> {
  let tail = knownTails.get(store.location) ?? (await lastEvent(store));
  for (let attempt = 0; attempt < 20; attempt++) {
    const event: AuditEvent = {
      seq: tail ? tail.seq + 1 : 1,
      id: randomUUID(),
      time: now().toISOString(),
      type,
      actor: { user: safeUser(), host: hostname(), tool: `kvdr ${VERSION}` },
      subject,
      prev: tail ? tail.hash : GENESIS,
    };
    const bytes = Buffer.from(`${JSON.stringify(event)}\n`);
    try {
      await store.put(auditKey(event.seq), bytes, { contentType: 'application/json' });
      knownTails.set(store.location, { seq: event.seq, hash: sha256(bytes) });
      return event;
    } catch (err) {
      if (!(err instanceof ObjectExistsError)) throw err;
      knownTails.delete(store.location);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 50 * (attempt + 1)));
      tail = await lastEvent(store);
    }
  }
  throw new Error(`could not append to the audit trail at ${store.location}: too many concurrent writers`);
}

/** One stored event as read back, with the hash the next event must carry. */
export interface StoredEvent {
  key: string;
  event: AuditEvent;
  sha256: string;
}

export type TrailItem = StoredEvent | { key: string; damaged: string };

/**
 * Every event of the trail in order, each with the sha256 of its stored bytes. Events are small and
 * many: up to 16 are fetched at once, and yielded in order.
 */
export async function* readTrail(store: ObjectStore): AsyncGenerator<TrailItem> {
  const read = async (key: string): Promise<TrailItem> => {
    const bytes = await readAll(await store.get(key));
    const event = parseEvent(bytes);
    return typeof event === 'string' ? { key, damaged: event } : { key, event, sha256: sha256(bytes) };
  };
  const window: Promise<TrailItem>[] = [];
  for await (const info of store.list(AUDIT)) {
    window.push(read(info.key));
    // Failures surface in order when awaited; until then they must not count as unhandled.
    window.at(-1)?.catch(() => undefined);
    if (window.length >= 16) yield await (window.shift() as Promise<TrailItem>);
  }
  while (window.length > 0) yield await (window.shift() as Promise<TrailItem>);
}

/** The number an event's key gives it (a damaged event's content cannot be trusted for it). */
export function seqOfKey(key: string): number {
  return Number(key.slice(AUDIT.length, AUDIT.length + SEQ_DIGITS));
}

/**
 * The trail items numbered after `seq`, in order, fetched by number until the first that does not
 * exist: reads only what was appended since a reader last looked, however long the trail. A damaged
 * item is passed on as such, for the reader to skip or report.
 */
export async function* readTrailAfter(store: ObjectStore, seq: number): AsyncGenerator<TrailItem> {
  for (let next = seq + 1; ; next++) {
    const key = auditKey(next);
    let bytes: Buffer;
    try {
      bytes = await readAll(await store.get(key));
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return;
      throw err;
    }
    const event = parseEvent(bytes);
    yield typeof event === 'string' ? { key, damaged: event } : { key, event, sha256: sha256(bytes) };
  }
}

export interface TrailCheck {
  events: number;
  /** sha256 of the newest event: record it elsewhere to detect a later edit of the newest events. */
  head: string;
  /** The first broken link, if any. */
  broken?: { key: string; reason: string };
}

/**
 * Walks the chain from the first event: every event must be where its number says, carry the number
 * after the one before, and hold the sha256 of the one before. The first link that does not is named.
 * Editing any event breaks the next one's link; removing one leaves a gap in the numbers. Only the
 * newest event can be changed unseen, which is why the head hash is reported.
 */
export function verifyTrail(store: ObjectStore): Promise<TrailCheck> {
  return checkChain(readTrail(store));
}

/** The chain check of {@link verifyTrail}, over events already read. */
export async function checkChain(items: AsyncIterable<TrailItem> | Iterable<TrailItem>): Promise<TrailCheck> {
  let previous: StoredEvent | undefined;
  let events = 0;
  for await (const item of items) {
    const broken = (reason: string): TrailCheck => ({ events, head: previous?.sha256 ?? GENESIS, broken: { key: item.key, reason } });
    if ('damaged' in item) return broken(item.damaged);
    const { event } = item;
    const expectedSeq = previous ? previous.event.seq + 1 : 1;
    if (item.key !== auditKey(event.seq)) return broken(`it says it is event ${event.seq}, but is stored as ${item.key}: it was moved or edited`);
    if (event.seq !== expectedSeq) {
      return broken(`event ${expectedSeq}${event.seq > expectedSeq + 1 ? `-${event.seq - 1}` : ''} is missing before it: removed from the trail`);
    }
    const expectedPrev = previous ? previous.sha256 : GENESIS;
    if (event.prev !== expectedPrev) {
      return broken(previous ? `its prev hash does not match ${previous.key}: that event was edited after it was written` : 'the first event does not start the chain');
    }
    previous = item;
    events++;
  }
  return { events, head: previous?.sha256 ?? GENESIS };
}

function parseEvent(bytes: Buffer): AuditEvent | string {
  try {
    const event = JSON.parse(bytes.toString('utf8')) as Partial<AuditEvent>;
    if (typeof event.seq !== 'number' || typeof event.prev !== 'string' || typeof event.type !== 'string' || typeof event.time !== 'string') {
      return 'not an audit event (seq, prev, type or time missing)';
    }
    return event as AuditEvent;
  } catch {
    return 'not valid JSON: it was edited or damaged';
  }
}

async function lastEvent(store: ObjectStore): Promise<Tail | undefined> {
  let last: string | undefined;
  for await (const info of store.list(AUDIT)) last = info.key;
  if (!last) return undefined;
  const bytes = await readAll(await store.get(last));
  const event = parseEvent(bytes);
  const seq = typeof event === 'string' ? Number(/(\d+)\.json$/.exec(last)?.[1] ?? 0) : event.seq;
  return { seq, hash: sha256(bytes) };
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function safeUser(): string {
  try {
    return process.env['SUDO_USER'] ?? userInfo().username;
  } catch {
    return 'unknown';
  }
}

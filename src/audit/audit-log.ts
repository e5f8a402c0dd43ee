import { createHash, randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { AUDIT } from '../repository/layout.js';
import type { ObjectStore } from '../repository/object-store.js';
import { ObjectExistsError } from '../util/errors.js';
import { readAll } from '../util/streams.js';
import { VERSION } from '../util/version.js';

export type AuditEventType = 'backup' | 'restore' | 'restore-aborted' | 'restore-dry-run' | 'restore-failed' | 'verify' | 'prune' | 'drill';

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

const GENESIS = '0'.repeat(64);
const auditKey = (seq: number): string => `${AUDIT}${String(seq).padStart(12, '0')}.json`;

/**
 * Appends an event to the trail in a repository. Events are write-once objects numbered in order;
 * two writers racing for the same number both see write-once refuse one of them, which re-reads the
 * tail and tries the next number, so the chain never forks.
 */
export async function appendAuditEvent(store: ObjectStore, type: AuditEventType, subject: Record<string, unknown>): Promise<AuditEvent> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const tail = await lastEvent(store);
    const event: AuditEvent = {
      seq: tail ? tail.seq + 1 : 1,
      id: randomUUID(),
      time: new Date().toISOString(),
      type,
      actor: { user: safeUser(), host: hostname(), tool: `kvdr ${VERSION}` },
      subject,
      prev: tail ? tail.hash : GENESIS,
    };
    try {
      await store.put(auditKey(event.seq), Buffer.from(`${JSON.stringify(event)}\n`), { contentType: 'application/json' });
      return event;
    } catch (err) {
      if (!(err instanceof ObjectExistsError)) throw err;
    }
  }
  throw new Error('could not append to the audit trail: too many concurrent writers');
}

async function lastEvent(store: ObjectStore): Promise<{ seq: number; hash: string } | undefined> {
  let last: string | undefined;
  for await (const info of store.list(AUDIT)) last = info.key;
  if (!last) return undefined;
  const bytes = await readAll(await store.get(last));
  return { seq: (JSON.parse(bytes.toString('utf8')) as AuditEvent).seq, hash: createHash('sha256').update(bytes).digest('hex') };
}

function safeUser(): string {
  try {
    return process.env['SUDO_USER'] ?? userInfo().username;
  } catch {
    return 'unknown';
  }
}

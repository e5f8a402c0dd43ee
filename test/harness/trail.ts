import { readTrail, type AuditEvent } from '../../src/audit/audit-log.js';
import { openStore } from '../../src/repository/open-store.js';

/** The audit trail of an fs repository, oldest first, read by kvdr's own reader. */
export async function trailEvents(path: string): Promise<AuditEvent[]> {
  const store = openStore({ name: 'trail', type: 'fs', path });
  const events: AuditEvent[] = [];
  try {
    for await (const item of readTrail(store)) if ('event' in item) events.push(item.event);
  } finally {
    await store.close();
  }
  return events;
}

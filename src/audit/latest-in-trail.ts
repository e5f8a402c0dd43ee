import type { ObjectStore } from '../repository/object-store.js';
import { readTrail, readTrailAfter, type AuditEvent } from './audit-log.js';

/**
 * The time of the newest trail event that matches, kept current by reading only the events appended
 * since the last look: the first look walks the whole trail, later ones (a follower refreshing every
 * few minutes) fetch a handful of objects however long the trail has grown.
 */
export class LatestInTrail {
  private seq: number | undefined;
  private latest: Date | undefined;

  constructor(private readonly matches: (event: AuditEvent) => boolean) {}

  async refresh(store: ObjectStore): Promise<Date | undefined> {
    for await (const event of this.seq === undefined ? everyEvent(store) : readTrailAfter(store, this.seq)) {
      this.seq = Math.max(this.seq ?? 0, event.seq);
      if (this.matches(event)) this.latest = new Date(event.time);
    }
    this.seq ??= 0;
    return this.latest;
  }
}

/** The whole trail, damaged entries left to `kvdr audit --verify-log` to report. */
async function* everyEvent(store: ObjectStore): AsyncGenerator<AuditEvent> {
  for await (const item of readTrail(store)) if ('event' in item) yield item.event;
}

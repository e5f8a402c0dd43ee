import type { ObjectStore } from '../repository/object-store.js';
import { readTrail, readTrailAfter, seqOfKey, type AuditEvent } from './audit-log.js';

/**
 * The time of the newest trail event that matches, kept current by reading only the events appended
 * since the last look: the first look walks the whole trail, later ones (a follower refreshing every
 * few minutes) fetch a handful of objects however long the trail has grown. Damaged events are passed
 * over (`kvdr audit --verify-log` reports them); where the reader is comes from the events' keys.
 */
export class LatestInTrail {
  private seq: number | undefined;
  private latest: Date | undefined;

  constructor(private readonly matches: (event: AuditEvent) => boolean) {}

  async refresh(store: ObjectStore): Promise<Date | undefined> {
    const items = this.seq === undefined ? readTrail(store) : readTrailAfter(store, this.seq);
    for await (const item of items) {
      this.seq = Math.max(this.seq ?? 0, seqOfKey(item.key));
      if (!('event' in item) || !this.matches(item.event)) continue;
      const time = new Date(item.event.time);
      // Two refreshes may overlap (catch-up and the follower timer): keep the newest either saw.
      if (!this.latest || time > this.latest) this.latest = time;
    }
    this.seq ??= 0;
    return this.latest;
  }
}

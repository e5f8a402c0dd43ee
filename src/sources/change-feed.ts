import type { ChangeEvent } from '../formats/change-segment.js';
import { KvdrError, oneLine } from '../util/errors.js';

/** Changes of the scope up to a revision: every change with a revision ≤ `revision` has been delivered. */
export interface ChangeBatch {
  events: ChangeEvent[];
  revision: number;
  /** Unix ms when kvdr received it: everything the source had changed by then up to `revision` is in it. */
  at: number;
}

/**
 * The changes of a scope from a revision on, in revision order, as etcd's watch or Consul's blocking
 * queries report them. The iteration ends only when the feed is closed; it fails with
 * {@link CompactedError} when the source no longer has the history asked for.
 */
export interface ChangeFeed {
  batches: AsyncIterable<ChangeBatch>;
  /** True while the feed is connected to its source (for status and metrics). */
  connected(): boolean;
  close(): Promise<void>;
}

/** The source has compacted (etcd) or lost (Consul index reset) the revisions a feed needed. */
export class CompactedError extends KvdrError {
  constructor(
    readonly wanted: number,
    readonly compactedTo: number | undefined,
    what: string,
  ) {
    super(`${what}: revision ${wanted} is no longer available (compacted${compactedTo !== undefined ? ` up to ${compactedTo}` : ''}); a new base is needed`);
    this.name = 'CompactedError';
  }
}

/**
 * A queue between a push-style source (watch events) and an async iterator, failing the iterator with
 * the first error. It grows without limit only if nobody reads it; the continuous job reads it at once.
 */
export class BatchQueue {
  private readonly items: ChangeBatch[] = [];
  private failure: Error | undefined;
  private ended = false;
  private wake: (() => void) | undefined;

  push(batch: ChangeBatch): void {
    this.items.push(batch);
    this.notify();
  }

  fail(err: unknown): void {
    this.failure ??= err instanceof Error ? err : new KvdrError(oneLine(err));
    this.notify();
  }

  end(): void {
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *drain(): AsyncIterable<ChangeBatch> {
    for (;;) {
      const item = this.items.shift();
      if (item) {
        yield item;
        continue;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

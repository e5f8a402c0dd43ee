import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { ChangeEvent } from '../../formats/change-segment.js';
import { oneLine } from '../../util/errors.js';
import { BatchQueue, CompactedError, type ChangeFeed } from '../change-feed.js';

export interface EtcdFeedOptions {
  /** Only keys starting with this; empty = the whole keyspace. */
  prefix: Buffer;
  /** The first revision to deliver. */
  from: number;
  /** For messages: `etcd http://…`. */
  label: string;
  /** @defaultValue Date.now */
  now?: () => number;
}

/**
 * One etcd watch on the scope from an exact revision (prevKv off), as batches of whole revisions.
 *
 * etcd3 resubscribes a watcher by itself after a disconnection, from the revision after the *header*
 * of the last response it saw — and a header carries the store's current revision, which is ahead of
 * the events while a watch replays history. A reconnection in the middle of that replay would resume
 * past events never delivered. So after every response, and after every (re)connection, the watcher's
 * resume point is set back to the revision after the last event this feed delivered: nothing is
 * skipped, and nothing is delivered twice (etcd never splits one revision's events across responses).
 */
export function watchChanges(etcd: Etcd3, options: EtcdFeedOptions): ChangeFeed {
  const now = options.now ?? Date.now;
  const queue = new BatchQueue();
  let next = options.from;
  let connected = false;
  let watcher: Watcher | undefined;
  let closed = false;

  const resumeFrom = (w: Watcher): void => {
    (w as unknown as { request: { start_revision?: string } }).request.start_revision = String(next);
  };

  const onData = (res: IWatchResponse): void => {
    const at = now();
    if (res.events.length === 0) {
      // A progress notification: the watch has delivered every change up to its header revision. A quiet
      // scope's log reaches that far, so resuming after compaction or a rebase need not reach back further.
      const reached = Number(res.header.revision);
      if (reached >= next) {
        next = reached + 1;
        if (watcher) resumeFrom(watcher);
        queue.push({ events: [], revision: reached, at });
      }
      return;
    }
    const events: ChangeEvent[] = res.events.map((ev) => toEvent(ev.type, ev.kv, at));
    const last = Math.max(...events.map((e) => e.revision));
    next = last + 1;
    if (watcher) resumeFrom(watcher);
    queue.push({ events, revision: last, at });
  };

  const onError = (err: unknown): void => {
    connected = false;
    void (async () => {
      // A cancelled watch does not say why in a way the client keeps: ask etcd whether `next` is gone.
      try {
        await etcd.kv.range({ key: options.prefix.length > 0 ? options.prefix : Buffer.from([0]), revision: String(next), limit: '1' });
      } catch (probe) {
        if (/required revision has been compacted/.test(oneLine(probe))) {
          queue.fail(new CompactedError(next, undefined, `${options.label}: watch of the scope`));
          return;
        }
      }
      queue.fail(err);
    })();
  };

  const start = async (): Promise<void> => {
    const builder = options.prefix.length > 0 ? etcd.watch().prefix(options.prefix) : etcd.watch().prefix(Buffer.alloc(0));
    const w = builder.startRevision(String(next)).watcher();
    watcher = w;
    w.on('connected', () => {
      connected = true;
      resumeFrom(w);
    });
    w.on('disconnected', () => (connected = false));
    w.on('data', onData);
    w.on('error', onError);
    if (closed) await w.cancel();
  };
  void start().catch((err: unknown) => queue.fail(err));

  return {
    batches: queue.drain(),
    connected: () => connected,
    close: async () => {
      closed = true;
      queue.end();
      await watcher?.cancel().catch(() => undefined);
    },
  };
}

function toEvent(type: string, kv: IKeyValue, at: number): ChangeEvent {
  const revision = Number(kv.mod_revision);
  if (type === 'Delete') return { op: 'del', key: Buffer.from(kv.key), revision, at };
  return {
    op: 'put',
    key: Buffer.from(kv.key),
    value: Buffer.from(kv.value),
    revision,
    createRevision: Number(kv.create_revision),
    version: Number(kv.version),
    lease: String(kv.lease ?? '0'),
    at,
  };
}

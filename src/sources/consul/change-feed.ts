import type { ChangeEvent } from '../../formats/change-segment.js';
import type { ConsulKvPair } from '../../formats/consul-export.js';
import { readJsonArray } from '../../formats/json-array-reader.js';
import { oneLine } from '../../util/errors.js';
import { BatchQueue, CompactedError, type ChangeFeed } from '../change-feed.js';
import type { ConsulAccess } from './connect.js';
import { keyPath } from './consul-target.js';
import { consulIndex, consulRequest } from './http.js';

export interface ConsulFeedOptions {
  scope: string;
  /** The keys under the scope at index `from - 1` (the base's, or rebuilt from a chain). */
  keys: Set<string>;
  /** The first index to deliver changes from. */
  from: number;
  /** How long one blocking query waits. @defaultValue 60 */
  waitSeconds?: number;
  /** Delay between attempts while Consul cannot be reached; doubles up to 10 s. @defaultValue 500 */
  retryMs?: number;
  /** @defaultValue Date.now */
  now?: () => number;
}

/**
 * Changes of a Consul KV prefix from blocking queries (`?recurse&index=…`), each answer diffed against
 * the previous one: a pair whose ModifyIndex is above the last answer's index is a put, a key no
 * longer there is a delete (at the answer's index — Consul does not say when within it). Only the set
 * of keys is kept between answers (memory O(keys in scope)); values stream through. What happened
 * between two answers is coalesced: a key written twice shows its last value, a key deleted and
 * re-created shows as a put. A Consul whose index went backwards (restored, or a new cluster) has lost
 * the history the feed was following: CompactedError.
 */
export function pollChanges(access: ConsulAccess, options: ConsulFeedOptions): ChangeFeed {
  const now = options.now ?? Date.now;
  const queue = new BatchQueue();
  const controller = new AbortController();
  let keys = options.keys;
  /** Every change up to here has been delivered: a pair modified after it is a put. */
  let index = options.from - 1;
  /** What the next blocking query waits on: the prefix's index as last answered (see the reaping note below). */
  let blockOn = index;
  let connected = false;
  const waitSeconds = options.waitSeconds ?? 60;

  const poll = async (): Promise<void> => {
    let delay = options.retryMs ?? 500;
    while (!controller.signal.aborted) {
      try {
        await answer();
        connected = true;
        delay = options.retryMs ?? 500;
      } catch (err) {
        if (controller.signal.aborted) return;
        // Lost history, or a refusal that waiting will not change (ACL 403, a bad request): the job says so.
        if (err instanceof CompactedError || /permission denied|ACL token is not known|: HTTP 400/.test(oneLine(err))) throw err;
        connected = false;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          controller.signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
        });
        delay = Math.min(delay * 2, 10_000);
      }
    }
  };

  const answer = async (): Promise<void> => {
    const response = await consulRequest(access, {
      path: `/kv/${keyPath(options.scope)}`,
      // consistent: a server that lost leadership must not answer with a stale view (false deletes).
      query: { recurse: true, consistent: true, index: String(blockOn), wait: `${waitSeconds}s` },
      what: `follow changes of ${options.scope || 'the KV store'}`,
      permission: `key_prefix "${options.scope}" { policy = "read" }`,
      accept: [404],
      signal: controller.signal,
      timeoutMs: (waitSeconds + 15) * 1000,
    });
    const at = now();
    const answered = consulIndex(response) ?? 0;
    if (answered === blockOn) {
      response.resume(); // the wait ran out: nothing changed
      return;
    }
    if (answered < index) {
      // A prefix's index falls back when Consul reaps the tombstones of its deletes: the KV table's own
      // index never does — unless the cluster itself went back (a snapshot restore, a new cluster).
      response.resume();
      const table = await tableIndex();
      if (table < index) throw new CompactedError(index + 1, undefined, `consul ${access.address}: the KV index went back from ${index} to ${table}`);
      blockOn = answered;
      return;
    }
    const puts: ChangeEvent[] = [];
    const seen = new Set<string>();
    if (response.statusCode !== 404) {
      for await (const { value } of readJsonArray(response, `consul ${access.address}`)) {
        const pair = value as ConsulKvPair;
        seen.add(pair.Key);
        if ((pair.ModifyIndex ?? 0) > index) {
          puts.push({
            op: 'put',
            key: Buffer.from(pair.Key, 'utf8'),
            value: pair.Value ? Buffer.from(pair.Value, 'base64') : Buffer.alloc(0),
            revision: pair.ModifyIndex ?? answered,
            createRevision: pair.CreateIndex ?? 0,
            version: 0,
            lease: '0',
            flags: pair.Flags ?? 0,
            at,
          });
        }
      }
    } else response.resume();
    const deletes: ChangeEvent[] = [];
    for (const key of keys) if (!seen.has(key)) deletes.push({ op: 'del', key: Buffer.from(key, 'utf8'), revision: answered, at });
    keys = seen;
    index = answered;
    blockOn = answered;
    const events = [...puts.sort((a, b) => a.revision - b.revision), ...deletes];
    queue.push({ events, revision: answered, at });
  };

  /** The KV table's index: what a read of a key that does not exist answers with. */
  const tableIndex = async (): Promise<number> => {
    const response = await consulRequest(access, {
      path: `/kv/${keyPath(`${options.scope}.kvdr-index-probe`)}`,
      query: { consistent: true },
      what: 'read the KV index',
      permission: `key_prefix "${options.scope}" { policy = "read" }`,
      accept: [404],
      signal: controller.signal,
    });
    response.resume();
    return consulIndex(response) ?? 0;
  };

  void poll().then(
    () => queue.end(),
    (err: unknown) => queue.fail(err),
  );

  return {
    batches: queue.drain(),
    connected: () => connected,
    close: () => {
      controller.abort();
      queue.end();
      return Promise.resolve();
    },
  };
}

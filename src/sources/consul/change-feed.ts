import type { ChangeEvent } from '../../formats/change-segment.js';
import type { ConsulKvPair } from '../../formats/consul-export.js';
import { readJsonArray } from '../../formats/json-array-reader.js';
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
  let index = options.from - 1;
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
        if (err instanceof CompactedError) throw err;
        connected = false;
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, 10_000);
      }
    }
  };

  const answer = async (): Promise<void> => {
    const response = await consulRequest(access, {
      path: `/kv/${keyPath(options.scope)}`,
      query: { recurse: true, index: String(index), wait: `${waitSeconds}s` },
      what: `follow changes of ${options.scope || 'the KV store'}`,
      permission: `key_prefix "${options.scope}" { policy = "read" }`,
      accept: [404],
      signal: controller.signal,
      timeoutMs: (waitSeconds + 15) * 1000,
    });
    const at = now();
    const answered = consulIndex(response) ?? 0;
    if (answered < index) {
      response.resume();
      throw new CompactedError(index + 1, undefined, `consul ${access.address}: the KV index went back from ${index} to ${answered}`);
    }
    if (answered === index) {
      response.resume(); // the wait ran out: nothing changed
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
    const events = [...puts.sort((a, b) => a.revision - b.revision), ...deletes];
    if (events.length > 0) queue.push({ events, revision: answered });
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

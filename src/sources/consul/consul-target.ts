import type { KvRecord } from '../../formats/record.js';
import { readJsonArray } from '../../formats/json-array-reader.js';
import { KvdrError } from '../../util/errors.js';
import { readAll } from '../../util/streams.js';
import type { KvTarget, ScopeContents } from '../kv-target.js';
import { consulAccess, type ConsulAccess, type ConsulConnection } from './connect.js';
import { consulRequest } from './http.js';

/** Raw-byte size above which a value is written with its own PUT: base64 in a txn body would exceed Consul's 512 KiB request limit. */
const LARGE_VALUE = 360 * 1024;

/**
 * Consul as a restore target. Batches go through `PUT /v1/txn` (all-or-nothing, at most 64 operations,
 * which every Consul version accepts, and well under the 512 KiB request limit); a value too large for
 * a transaction body is written alone with `PUT /v1/kv/<key>`.
 */
export class ConsulTarget implements KvTarget {
  readonly description: string;
  readonly batchLimits = { ops: 64, bytes: 256 * 1024 };
  readonly maxValueBytes = 512 * 1024;
  private readonly access: ConsulAccess;

  constructor(connection: Partial<ConsulConnection>) {
    this.access = consulAccess(connection);
    this.description = `consul:${this.access.address}`;
  }

  async inspectScope(prefix: Buffer): Promise<ScopeContents> {
    // Consul's KV API cannot page (no limit or start key) nor count: the key list of the scope is the
    // only way to count it, and Consul itself builds that whole response in memory anyway.
    const response = await consulRequest(this.access, {
      path: `/kv/${keyPath(prefix)}`,
      query: { keys: true },
      what: 'count the keys in the scope',
      permission: `key_prefix "${prefix.toString()}" { policy = "read" }`,
      accept: [404],
    });
    if (response.statusCode === 404) {
      response.resume();
      return { count: 0, examples: [] };
    }
    const keys = JSON.parse((await readAll(response)).toString('utf8')) as string[];
    return { count: keys.length, examples: keys.slice(0, 5) };
  }

  async deleteScope(prefix: Buffer): Promise<number> {
    const { count } = await this.inspectScope(prefix);
    const response = await consulRequest(this.access, {
      method: 'DELETE',
      path: `/kv/${keyPath(prefix)}`,
      query: { recurse: true },
      what: 'delete the scope',
      permission: `key_prefix "${prefix.toString()}" { policy = "write" }`,
    });
    response.resume();
    return count;
  }

  async writeBatch(records: readonly KvRecord[]): Promise<void> {
    const only = records[0];
    if (records.length === 1 && only && only.value.length > LARGE_VALUE) {
      const response = await consulRequest(this.access, {
        method: 'PUT',
        path: `/kv/${keyPath(only.key)}`,
        query: { flags: String(only.flags ?? 0) },
        body: only.value,
        what: `write ${only.key.toString()}`,
        permission: `key_prefix "${only.key.toString()}" { policy = "write" }`,
      });
      response.resume();
      return;
    }
    const ops = records.map((r) => ({ KV: { Verb: 'set', Key: r.key.toString('utf8'), Value: r.value.toString('base64'), Flags: r.flags ?? 0 } }));
    const response = await consulRequest(this.access, {
      method: 'PUT',
      path: '/txn',
      body: JSON.stringify(ops),
      what: `write ${records.length} keys in a transaction`,
      permission: 'key_prefix write on the restored keys',
      accept: [409],
    });
    const body = (await readAll(response)).toString('utf8');
    if (response.statusCode === 409) {
      const errors = (JSON.parse(body) as { Errors?: { OpIndex: number; What: string }[] }).Errors ?? [];
      const first = errors[0];
      throw new KvdrError(`consul ${this.access.address}: transaction rolled back${first ? `: ${first.What} (key ${records[first.OpIndex]?.key.toString() ?? '?'})` : ''}`);
    }
  }

  async *read(prefix: Buffer): AsyncIterable<KvRecord> {
    const response = await consulRequest(this.access, {
      path: `/kv/${keyPath(prefix)}`,
      query: { recurse: true, consistent: true },
      what: 'read back the restored keys',
      permission: `key_prefix "${prefix.toString()}" { policy = "read" }`,
      accept: [404],
    });
    if (response.statusCode === 404) {
      response.resume();
      return;
    }
    for await (const { value } of readJsonArray(response, `consul ${this.access.address}`)) {
      const pair = value as { Key: string; Value: string | null; Flags?: number };
      yield { key: Buffer.from(pair.Key, 'utf8'), value: Buffer.from(pair.Value ?? '', 'base64'), flags: pair.Flags ?? 0 };
    }
  }

  close(): Promise<void> {
    this.access.agent?.destroy();
    return Promise.resolve();
  }
}

/** Consul takes the key in the URL path: escape each segment, keep the slashes. */
export function keyPath(key: Buffer | string): string {
  return key.toString().split('/').map(encodeURIComponent).join('/');
}

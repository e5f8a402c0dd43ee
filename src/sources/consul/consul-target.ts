import type { IncomingMessage } from 'node:http';
import type { SourceConfig } from '../../config/schema.js';
import type { KvRecord } from '../../formats/record.js';
import { readJsonArray } from '../../formats/json-array-reader.js';
import { KvdrError, oneLine } from '../../util/errors.js';
import { readAll } from '../../util/streams.js';
import { keyCount, quoteKey } from '../key-text.js';
import type { KvTarget, ReadHints, ScopeContents } from '../kv-target.js';
import { consulAccess, type ConsulAccess, type ConsulConnection } from './connect.js';
import { consulRequest, type ConsulRequest } from './http.js';
import {
  CONSUL_DEFAULT_MAX_VALUE_BYTES,
  CONSUL_TXN_OPS,
  keyPath,
  setOp,
  singleSetBodyBytes,
  txnBatchBytes,
  txnBodyLimit,
  unstorableKey,
  urlUnsafeKey,
} from './key-rules.js';

export { keyPath } from './key-rules.js';

/** How to reach the agent, and the servers' kv_max_value_size when it is not Consul's default. */
export type ConsulTargetConfig = Partial<ConsulConnection> & Partial<Pick<SourceConfig, 'maxValueBytes'>>;

export interface ConsulTargetOptions {
  /** Longest Consul may stay silent during a call before it fails (a stopped agent must not hang a restore). @defaultValue 30 s */
  timeoutMs?: number;
}

/**
 * Consul as a restore target. Batches go through `PUT /v1/txn` (all-or-nothing, keys in the JSON body
 * exactly as they are); a value too large for a transaction body goes alone through
 * `PUT /v1/kv/<key>`, which only keys a URL carries exactly may take (key-rules.ts).
 */
export class ConsulTarget implements KvTarget {
  readonly description: string;
  readonly batchLimits: { ops: number; bytes: number };
  readonly maxValueBytes: number;
  private readonly access: ConsulAccess;
  private readonly txnBodyLimit: number;
  /** How messages name the agent, as every Consul call does: `consul http://host:8500`. */
  private readonly where: string;

  private readonly timeoutMs: number | undefined;

  constructor(connection: ConsulTargetConfig, options: ConsulTargetOptions = {}) {
    this.timeoutMs = options.timeoutMs;
    this.access = consulAccess(connection);
    this.description = `consul:${this.access.address}`;
    this.where = `consul ${this.access.address}`;
    this.maxValueBytes = connection.maxValueBytes ?? CONSUL_DEFAULT_MAX_VALUE_BYTES;
    this.txnBodyLimit = txnBodyLimit(this.maxValueBytes);
    this.batchLimits = { ops: CONSUL_TXN_OPS, bytes: txnBatchBytes(this.txnBodyLimit, CONSUL_TXN_OPS) };
  }

  refuse(key: Buffer, valueBytes: number): string | undefined {
    const unstorable = unstorableKey(key);
    if (unstorable) return unstorable;
    if (valueBytes > this.maxValueBytes) {
      return `a ${valueBytes}-byte value is over Consul's kv_max_value_size of ${this.maxValueBytes} bytes (if the servers allow more, set maxValueBytes on the source)`;
    }
    if (singleSetBodyBytes(key, valueBytes) <= this.txnBodyLimit) return undefined;
    const unsafe = urlUnsafeKey(key.toString('utf8'));
    if (unsafe) {
      return `a ${valueBytes}-byte value is too large for a transaction body, so it would be written with PUT /v1/kv/<key>, and this key cannot travel exactly in that URL: ${unsafe}`;
    }
    return undefined;
  }

  inspectScope(prefix: Buffer): Promise<ScopeContents> {
    return this.listScope(prefix, 'count the keys in the scope');
  }

  private async listScope(prefix: Buffer, what: string): Promise<ScopeContents> {
    // Consul's KV API cannot page (no limit or start key) nor count: the key list of the scope is the
    // only way to count it, and Consul itself builds that whole response in memory anyway.
    const response = await this.call({
      path: this.prefixPath(prefix, what),
      query: { keys: true },
      what,
      permission: `key_prefix "${prefix.toString()}" { policy = "read" }`,
      accept: [404],
    });
    if (response.statusCode === 404) {
      response.resume();
      return { count: 0, examples: [] };
    }
    const keys = JSON.parse((await this.body(response, what)).toString('utf8')) as string[];
    return { count: keys.length, examples: keys.slice(0, 5) };
  }

  /** Counts, then removes the prefix with one `delete-tree` in a transaction: the prefix travels in the body, never a URL. */
  async deleteScope(prefix: Buffer): Promise<number> {
    const { count } = await this.listScope(prefix, 'delete the scope');
    await this.transaction([{ KV: { Verb: 'delete-tree', Key: prefix.toString('utf8') } }], {
      what: 'delete the scope',
      permission: `key_prefix "${prefix.toString()}" { policy = "write" }`,
      keyOf: () => prefix,
    });
    return count;
  }

  async writeBatch(records: readonly KvRecord[]): Promise<void> {
    if (records.length === 0) return;
    const ops = this.checkBatch(records);
    const body = JSON.stringify(ops);
    const only = records[0];
    if (Buffer.byteLength(body) > this.txnBodyLimit) {
      if (records.length !== 1 || !only) {
        throw new KvdrError(`${this.where}: a batch of ${keyCount(records.length)} makes a ${Buffer.byteLength(body)}-byte transaction body, over Consul's limit of ${this.txnBodyLimit} bytes; nothing was sent (keep batches within batchLimits)`);
      }
      await this.putAlone(only);
      return;
    }
    await this.transaction(body, {
      what: `write ${keyCount(records.length)} in a transaction`,
      permission: 'key_prefix write on the restored keys',
      keyOf: (i) => records[i]?.key,
    });
  }

  async *read(prefix: Buffer, hints: ReadHints = {}): AsyncIterable<KvRecord> {
    // Consul's KV API cannot read a range of keys: one read of the whole prefix, once all of it is ready.
    await hints.waitFor?.(undefined);
    const what = 'read back the restored keys';
    const response = await this.call({
      path: this.prefixPath(prefix, what),
      query: { recurse: true, consistent: true },
      what,
      permission: `key_prefix "${prefix.toString()}" { policy = "read" }`,
      accept: [404],
    });
    if (response.statusCode === 404) {
      response.resume();
      return;
    }
    try {
      for await (const { value } of readJsonArray(response, `consul ${this.access.address}`)) {
        const pair = value as { Key: string; Value: string | null; Flags?: number };
        yield { key: Buffer.from(pair.Key, 'utf8'), value: Buffer.from(pair.Value ?? '', 'base64'), flags: pair.Flags ?? 0 };
      }
    } catch (err) {
      throw this.broken(err, what);
    }
  }

  close(): Promise<void> {
    this.access.agent?.destroy();
    return Promise.resolve();
  }

  /** The last check before sending: a record the plan should have refused is never sent. Returns the ops. */
  private checkBatch(records: readonly KvRecord[]): object[] {
    if (records.length > this.batchLimits.ops) {
      throw new KvdrError(`${this.where}: a batch of ${keyCount(records.length)} exceeds the ${this.batchLimits.ops} operations of a transaction; nothing was sent (split the batch)`);
    }
    return records.map((r) => {
      const why = this.refuse(r.key, r.value.length);
      if (why) throw new KvdrError(`${this.where}: cannot write ${quoteKey(r.key)}: ${why}; nothing was sent`);
      const flags = r.flags ?? 0;
      if (!Number.isSafeInteger(flags) || flags < 0) throw new KvdrError(`${this.where}: cannot write ${quoteKey(r.key)}: its flags ${flags} are not a whole number Consul can hold exactly; nothing was sent`);
      return setOp(r.key, r.value, flags);
    });
  }

  /** A value too large for a transaction: its own PUT, which refuse() allowed only for a key the URL carries exactly. */
  private async putAlone(record: KvRecord): Promise<void> {
    const key = record.key.toString('utf8');
    const unsafe = urlUnsafeKey(key);
    if (unsafe) throw new KvdrError(`${this.where}: cannot write ${quoteKey(record.key)} with PUT /v1/kv/<key>: ${unsafe}; nothing was sent`);
    const what = `write ${quoteKey(record.key)}`;
    const response = await this.call({
      method: 'PUT',
      path: `/kv/${keyPath(key)}`,
      query: { flags: String(record.flags ?? 0) },
      body: record.value,
      what,
      permission: `key_prefix "${key}" { policy = "write" }`,
    });
    const answer = (await this.body(response, what)).toString('utf8').trim();
    if (answer !== 'true') throw new KvdrError(`${this.where}: cannot ${what}: Consul answered ${answer.slice(0, 100) || 'nothing'}`);
  }

  /** One `PUT /v1/txn`; a rolled-back transaction (409) becomes one line naming the first failed op's key. */
  private async transaction(ops: object[] | string, context: { what: string; permission: string; keyOf: (opIndex: number) => Buffer | undefined }): Promise<void> {
    const response = await this.call({
      method: 'PUT',
      path: '/txn',
      body: typeof ops === 'string' ? ops : JSON.stringify(ops),
      what: context.what,
      permission: context.permission,
      accept: [409],
    });
    const body = (await this.body(response, context.what)).toString('utf8');
    if (response.statusCode === 409) {
      const errors = (JSON.parse(body) as { Errors?: { OpIndex: number; What: string }[] | null }).Errors ?? [];
      const first = errors[0];
      const key = first ? context.keyOf(first.OpIndex) : undefined;
      throw new KvdrError(
        `${this.where}: cannot ${context.what}: the transaction was rolled back, nothing of it was written` +
          `${first ? `: ${first.What}${key ? ` (key ${quoteKey(key)})` : ''}` : ''}`,
      );
    }
  }

  private prefixPath(prefix: Buffer, what: string): string {
    const text = prefix.toString('utf8');
    const unsafe = unstorablePrefix(prefix) ?? urlUnsafeKey(text);
    if (unsafe) throw new KvdrError(`${this.where}: cannot ${what} under ${quoteKey(prefix)}: Consul's HTTP API cannot address that prefix exactly (${unsafe}); choose another prefix`);
    return `/kv/${keyPath(text)}`;
  }

  private call(req: ConsulRequest): Promise<IncomingMessage> {
    return consulRequest(this.access, this.timeoutMs === undefined ? req : { ...req, timeoutMs: this.timeoutMs });
  }

  /** The whole answer; a connection cut while it arrives becomes one line naming the agent. */
  private async body(response: IncomingMessage, what: string): Promise<Buffer> {
    try {
      return await readAll(response);
    } catch (err) {
      throw this.broken(err, what);
    }
  }

  private broken(err: unknown, what: string): KvdrError {
    if (err instanceof KvdrError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    return new KvdrError(`${this.where}: cannot ${what}: the connection to Consul broke off (${code ?? oneLine(err)}); check that the agent is up`, undefined, { cause: err });
  }
}

/** A prefix is any UTF-8 text, the empty one (the whole store) included. */
function unstorablePrefix(prefix: Buffer): string | undefined {
  return prefix.length === 0 ? undefined : unstorableKey(prefix);
}

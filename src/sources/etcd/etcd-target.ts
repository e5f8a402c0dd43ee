import type { CallOptions, Client, Metadata } from '@grpc/grpc-js';
import { castGrpcError, EtcdInvalidAuthTokenError, GRPCResourceExhastedError, type Etcd3 } from 'etcd3';
import type { SourceConfig } from '../../config/schema.js';
import type { KvRecord } from '../../formats/record.js';
import { KvdrError } from '../../util/errors.js';
import { keyCount, quoteKey } from '../key-text.js';
import type { KvTarget, ReadHints, ScopeContents } from '../kv-target.js';
import { connectEtcd, etcdAuth, etcdTls, type EtcdConnection } from './connect.js';
import { describeEtcdError } from './errors.js';
import { prefixEnd } from './range-reader.js';
import { decodeRange, encodeRange, encodeTxn, type RangePage } from './kv-wire.js';
import {
  ETCD_DEFAULT_MAX_REQUEST_BYTES,
  ETCD_MAX_TXN_OPS,
  etcdBatchBytes,
  etcdHeaderFor,
  etcdTxnRequestBytes,
  largestEtcdValue,
} from './request-size.js';

/** How to reach the cluster, and its --max-request-bytes when it is not etcd's default. */
export type EtcdTargetConfig = EtcdConnection & Partial<Pick<SourceConfig, 'maxRequestBytes'>>;

export interface EtcdTargetOptions {
  /** Longest a write or delete may take before it fails (a stopped server must not hang a restore). @defaultValue 30 s */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * etcd as a restore target. Every request stays within the cluster's --max-request-bytes, counted the
 * way etcd counts it (request-size.ts), and --max-txn-ops 128. Leases are not carried over: a
 * restored key has no lease.
 */
export class EtcdTarget implements KvTarget {
  readonly description: string;
  readonly batchLimits: { ops: number; bytes: number };
  readonly maxValueBytes: number;
  private readonly etcd: Etcd3;
  private readonly maxRequestBytes: number;
  private readonly headerBytes: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly connection: EtcdTargetConfig,
    options: EtcdTargetOptions = {},
  ) {
    const env = options.env ?? process.env;
    this.etcd = connectEtcd(connection, env);
    this.description = connection.endpoints.map((u) => `etcd:${u}`).join(',');
    this.maxRequestBytes = connection.maxRequestBytes ?? ETCD_DEFAULT_MAX_REQUEST_BYTES;
    this.headerBytes = etcdHeaderFor(etcdAuth(connection, env)?.username, Boolean(etcdTls(connection, env)?.cert));
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxValueBytes = largestEtcdValue(1, this.maxRequestBytes, this.headerBytes);
    this.batchLimits = { ops: ETCD_MAX_TXN_OPS, bytes: etcdBatchBytes(this.maxRequestBytes, ETCD_MAX_TXN_OPS, this.headerBytes) };
  }

  refuse(key: Buffer, valueBytes: number): string | undefined {
    if (key.length === 0) return 'etcd does not allow an empty key';
    const request = etcdTxnRequestBytes([{ key: key.length, value: valueBytes }], this.headerBytes);
    if (request <= this.maxRequestBytes) return undefined;
    const largest = largestEtcdValue(key.length, this.maxRequestBytes, this.headerBytes);
    return (
      `a ${valueBytes}-byte value under this ${key.length}-byte key makes a ${request}-byte request, over etcd's ` +
      `--max-request-bytes of ${this.maxRequestBytes} (${largest < 0 ? 'the key alone is too long' : `at most ${largest} value bytes fit`}; ` +
      'if the cluster allows larger requests, set maxRequestBytes on the source)'
    );
  }

  async inspectScope(prefix: Buffer): Promise<ScopeContents> {
    return this.guard('count the keys in the scope', async () => {
      const all = (): ReturnType<Etcd3['getAll']> => (prefix.length === 0 ? this.etcd.getAll() : this.etcd.getAll().prefix(prefix));
      const [count, examples] = await Promise.all([all().options(this.deadline()).count(), all().options(this.deadline()).limit(5).keys()]);
      return { count, examples };
    });
  }

  async deleteScope(prefix: Buffer): Promise<number> {
    return this.guard('delete the scope', async () => {
      const response = await this.etcd.kv.deleteRange(
        { key: prefix.length === 0 ? Buffer.from([0]) : prefix, range_end: prefixEnd(prefix) },
        this.deadline(),
      );
      return Number(response.deleted);
    });
  }

  async writeBatch(records: readonly KvRecord[]): Promise<void> {
    if (records.length === 0) return;
    this.checkBatch(records);
    await this.guard(`write ${keyCount(records.length)} in a transaction`, () => this.unary('Txn', encodeTxn(records)));
  }

  async *read(prefix: Buffer, hints: ReadHints = {}): AsyncIterable<KvRecord> {
    try {
      // Piece i is [splits[i-1], splits[i]) (the first from the prefix, the last to its end), read in
      // pages bounded by the piece's end; the next piece's first page is asked for while one is consumed,
      // once its waitFor has let it go. Each piece is read at the newest revision when it starts.
      const splits = hints.splits ?? [];
      type Piece = { pages: AsyncIterator<KvRecord[]>; page: Promise<IteratorResult<KvRecord[]>> };
      const start = async (i: number): Promise<Piece | undefined> => {
        if (i > splits.length) return undefined;
        const from = i === 0 ? undefined : splits[i - 1];
        const to = splits[i];
        await hints.waitFor?.(to);
        const pages = this.pages(from ?? (prefix.length === 0 ? Buffer.from([0]) : prefix), to ?? prefixEnd(prefix))[Symbol.asyncIterator]();
        const page = pages.next();
        page.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
        return { pages, page };
      };
      let next = start(0);
      next.catch(() => undefined);
      for (let i = 0; ; i++) {
        const current = await next;
        if (!current) return;
        next = start(i + 1);
        next.catch(() => undefined);
        for (let item = await current.page; !item.done; item = await current.pages.next()) yield* item.value;
      }
    } catch (err) {
      throw describeEtcdError(err, this.connection.endpoints, 'read back the restored keys');
    }
  }

  close(): Promise<void> {
    this.etcd.close();
    return Promise.resolve();
  }

  /**
   * The keys in [from, to), page by page, every page at the revision of the first (one point in time).
   * Pages start at 1000 keys and are then sized to about 8 MiB from the sizes seen (etcd 3.4 walks its
   * index to the end of the range on every page, so few large pages beat many small ones), halved when
   * one exceeds the gRPC message limit. The next page is asked for before this one is handed on.
   */
  private async *pages(from: Buffer, to: Buffer): AsyncIterable<KvRecord[]> {
    let limit = 1000;
    let revision = 0;
    const fetch = async (key: Buffer): Promise<RangePage> => {
      for (;;) {
        try {
          return decodeRange(await this.unary('Range', encodeRange(key, to, limit, revision)));
        } catch (err) {
          if (!(err instanceof GRPCResourceExhastedError) || limit <= 1) throw err;
          limit = Math.max(1, Math.floor(limit / 2));
        }
      }
    };
    let response = await fetch(from);
    revision = response.revision;
    for (;;) {
      const { kvs } = response;
      const last = kvs.at(-1);
      if (last) limit = Math.max(1, Math.min(50_000, Math.floor((8 * 1024 * 1024 * kvs.length) / response.bytes)));
      const next = response.more && last ? fetch(Buffer.concat([last.key, Buffer.from([0])])) : undefined;
      next?.catch(() => undefined); // awaited below; this only keeps an early failure from going unhandled
      if (kvs.length > 0) yield kvs;
      if (!next) return;
      response = await next;
    }
  }

  /**
   * One KV call with the request and response as protobuf bytes, through etcd3's own connection pool
   * (host choice, circuit breakers, retries of recoverable errors, auth token), but without its
   * object mapping: building a million put objects and mapping every key read back to an object with
   * its revisions as strings was a third of a restore's client CPU, on cores etcd needs.
   */
  private unary(method: 'Range' | 'Txn', request: Buffer): Promise<Buffer> {
    const pool = (this.etcd as unknown as { pool: EtcdPool }).pool;
    const call = (): Promise<Buffer> =>
      pool.withConnection('KV', ({ client, metadata }) =>
        new Promise<Buffer>((resolve, reject) => {
          client.makeUnaryRequest(`/etcdserverpb.KV/${method}`, asIs, asIs, request, metadata, this.deadline(), (err, response) =>
            err ? reject(castGrpcError(err)) : resolve(response as Buffer),
          );
        }),
      );
    return pool.globalPolicy.execute(() =>
      call().catch((err: unknown) => {
        if (!(err instanceof EtcdInvalidAuthTokenError)) throw err;
        pool.authenticator.invalidateMetadata(); // as etcd3 does: a fresh token, then once more
        return call();
      }),
    );
  }

  /** The last check before sending: a batch etcd would refuse is never sent (the plan should have caught it). */
  private checkBatch(records: readonly KvRecord[]): void {
    const where = `etcd ${this.connection.endpoints.join(',')}`;
    if (records.length > this.batchLimits.ops) {
      throw new KvdrError(`${where}: a batch of ${keyCount(records.length)} exceeds etcd's --max-txn-ops ${this.batchLimits.ops}; nothing was sent (split the batch)`);
    }
    for (const r of records) {
      const why = this.refuse(r.key, r.value.length);
      if (why) throw new KvdrError(`${where}: cannot write ${quoteKey(r.key)}: ${why}; nothing was sent`);
    }
    const request = etcdTxnRequestBytes(records.map((r) => ({ key: r.key.length, value: r.value.length })), this.headerBytes);
    if (request > this.maxRequestBytes) {
      throw new KvdrError(
        `${where}: a batch of ${keyCount(records.length)} makes a ${request}-byte request, over --max-request-bytes ${this.maxRequestBytes}; nothing was sent (keep batches within batchLimits)`,
      );
    }
  }

  private deadline(): CallOptions {
    return { deadline: Date.now() + this.timeoutMs };
  }

  private async guard<T>(what: string, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (err) {
      throw describeEtcdError(err, this.connection.endpoints, what);
    }
  }
}

/** What `unary` uses of etcd3's (untyped) connection pool. */
interface EtcdPool {
  withConnection<T>(service: 'KV', fn: (connection: { client: Client; metadata: Metadata }) => Promise<T>): Promise<T>;
  globalPolicy: { execute<T>(fn: () => Promise<T>): Promise<T> };
  authenticator: { invalidateMetadata(): void };
}

const asIs = (bytes: Buffer): Buffer => bytes;

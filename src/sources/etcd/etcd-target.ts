import type { Etcd3 } from 'etcd3';
import type { KvRecord } from '../../formats/record.js';
import type { KvTarget, ScopeContents } from '../kv-target.js';
import { connectEtcd, type EtcdConnection } from './connect.js';
import { describeEtcdError } from './errors.js';
import { prefixEnd, readRange } from './range-reader.js';

/**
 * etcd as a restore target. Batches stay inside etcd's defaults (--max-txn-ops 128,
 * --max-request-bytes 1.5 MiB). Leases are not carried over: a restored key has no lease.
 */
export class EtcdTarget implements KvTarget {
  readonly description: string;
  readonly batchLimits = { ops: 128, bytes: 1024 * 1024 };
  readonly maxValueBytes = undefined;
  private readonly etcd: Etcd3;

  constructor(private readonly connection: EtcdConnection) {
    this.etcd = connectEtcd(connection);
    this.description = connection.endpoints.map((u) => `etcd:${u}`).join(',');
  }

  async inspectScope(prefix: Buffer): Promise<ScopeContents> {
    return this.guard('count the keys in the scope', async () => {
      const range = prefix.length === 0 ? this.etcd.getAll() : this.etcd.getAll().prefix(prefix);
      const [count, examples] = await Promise.all([range.count(), (prefix.length === 0 ? this.etcd.getAll() : this.etcd.getAll().prefix(prefix)).limit(5).keys()]);
      return { count, examples };
    });
  }

  async deleteScope(prefix: Buffer): Promise<number> {
    return this.guard('delete the scope', async () => {
      const response = await this.etcd.kv.deleteRange({ key: prefix.length === 0 ? Buffer.from([0]) : prefix, range_end: prefixEnd(prefix) });
      return Number(response.deleted);
    });
  }

  async writeBatch(records: readonly KvRecord[]): Promise<void> {
    await this.guard('write keys', () =>
      this.etcd.kv.txn({ compare: [], success: records.map((r) => ({ request_put: { key: r.key, value: r.value } })), failure: [] }),
    );
  }

  async *read(prefix: Buffer): AsyncIterable<KvRecord> {
    try {
      yield* readRange(this.etcd, { prefix }).records;
    } catch (err) {
      throw describeEtcdError(err, this.connection.endpoints, 'read back the restored keys');
    }
  }

  close(): Promise<void> {
    this.etcd.close();
    return Promise.resolve();
  }

  private async guard<T>(what: string, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (err) {
      throw describeEtcdError(err, this.connection.endpoints, what);
    }
  }
}

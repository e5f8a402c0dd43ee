import type { KvRecord } from '../formats/record.js';

/** What the abort/--force rule sees in a scope before anything is written. */
export interface ScopeContents {
  count: number;
  /** A few keys, for the message that names what is in the way. */
  examples: string[];
}

/** A live etcd or Consul that a restore writes into. */
export interface KvTarget {
  /** e.g. `etcd:http://127.0.0.1:2379`, for messages and audit events. */
  readonly description: string;
  /** Largest batch one transaction may carry: operations and bytes of keys plus values. */
  readonly batchLimits: { ops: number; bytes: number };
  /** Largest single value the target accepts, if it has a fixed limit (Consul: 512 KiB). */
  readonly maxValueBytes: number | undefined;
  inspectScope(prefix: Buffer): Promise<ScopeContents>;
  /** Deletes every key under the prefix in one operation; returns how many were deleted. */
  deleteScope(prefix: Buffer): Promise<number>;
  /** Writes the records in one transaction (all or nothing). */
  writeBatch(records: readonly KvRecord[]): Promise<void>;
  /** Every key/value under the prefix, for verifying what was written. */
  read(prefix: Buffer): AsyncIterable<KvRecord>;
  close(): Promise<void>;
}

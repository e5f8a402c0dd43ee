import type { KvRecord } from '../formats/record.js';

/** What the abort/--force rule sees in a scope before anything is written. */
export interface ScopeContents {
  count: number;
  /** A few keys, for the message that names what is in the way. */
  examples: string[];
}

/** What a reader may use to read faster; a target that has no use for a hint ignores it. */
export interface ReadHints {
  /**
   * Keys inside the prefix, ascending, roughly evenly spaced among the keys it holds: etcd 3.4 walks
   * its index from each page's first key to the end of the range, so a million-key scope read in pages
   * costs quadratic time unless each page's range ends at the next split.
   */
  splits?: readonly Buffer[];
  /**
   * Called before each piece is read, with the key that ends it (undefined: the end of the prefix);
   * the read waits for it. This one every target honours: a restore verifies the pieces whose keys are
   * all written while it still writes later ones. A target that reads in one go calls it once, with undefined.
   */
  waitFor?: (pieceEnd: Buffer | undefined) => Promise<void>;
}

/**
 * A live etcd or Consul that a restore writes into. Every implementation runs the one conformance
 * suite (test/integration/kv-target-conformance.ts).
 *
 * Invariants an implementation keeps:
 * - `refuse` is pure: the restore plan calls it for every record before the first write, so a record
 *   it accepts must be writable by `writeBatch` (no write fails for a reason `refuse` could have seen).
 * - `writeBatch` is all or nothing, and writes each key exactly where its bytes say: no key is ever
 *   normalised, re-encoded or resolved into another key on the way (a `..` stays a `..`).
 * - `deleteScope(p)` removes exactly the keys that start with the bytes of `p`, nothing else.
 */
export interface KvTarget {
  /** e.g. `etcd:http://127.0.0.1:2379`, for messages and audit events. */
  readonly description: string;
  /** Largest batch one transaction may carry: operations and bytes of keys plus values. */
  readonly batchLimits: { ops: number; bytes: number };
  /** Largest single value the target accepts (etcd: what fits in one request; Consul: 512 KiB unless configured). */
  readonly maxValueBytes: number;
  /**
   * Why the target cannot hold this key with a value of this many bytes — a short phrase such as
   * "etcd does not allow an empty key" — or undefined when it can. No I/O.
   */
  refuse(key: Buffer, valueBytes: number): string | undefined;
  inspectScope(prefix: Buffer): Promise<ScopeContents>;
  /** Deletes every key under the prefix in one operation; returns how many were deleted. */
  deleteScope(prefix: Buffer): Promise<number>;
  /** Writes the records in one transaction (all or nothing). */
  writeBatch(records: readonly KvRecord[]): Promise<void>;
  /** Every key/value under the prefix, in ascending key order, for verifying what was written. */
  read(prefix: Buffer, hints?: ReadHints): AsyncIterable<KvRecord>;
  close(): Promise<void>;
}

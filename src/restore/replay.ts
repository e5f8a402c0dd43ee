import type { KvRecord } from '../formats/record.js';
import type { KvTarget } from '../sources/kv-target.js';
import { KvdrError, oneLine } from '../util/errors.js';
import type { KeyScope } from './key-scope.js';

/** A replay that stopped part-way: how far it got, for the message and the audit trail. */
export class ReplayError extends KvdrError {
  constructor(
    readonly written: number,
    readonly total: number,
    target: string,
    cause: unknown,
  ) {
    super(
      `${target}: restore stopped after ${written} of ${total} keys were written (${oneLine(cause)}); ` +
        'the scope is incomplete — fix the cause and re-run with --force to replace it',
      undefined,
      { cause },
    );
  }
}

/**
 * Writes the mapped records in transactions no larger than the target allows. A value too large to
 * share a batch goes alone. Returns the number of keys written.
 */
export async function replay(records: AsyncIterable<KvRecord>, scope: KeyScope, target: KvTarget, total: number, onWritten: (n: number) => void): Promise<number> {
  const { ops, bytes: maxBytes } = target.batchLimits;
  let batch: KvRecord[] = [];
  let batchBytes = 0;
  let written = 0;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    try {
      await target.writeBatch(batch);
    } catch (err) {
      throw new ReplayError(written, total, target.description, err);
    }
    written += batch.length;
    onWritten(written);
    batch = [];
    batchBytes = 0;
  };
  for await (const record of records) {
    const key = scope.map(record.key);
    if (!key) continue;
    const size = key.length + record.value.length;
    if (batch.length >= ops || (batch.length > 0 && batchBytes + size > maxBytes)) await flush();
    batch.push({ ...record, key });
    batchBytes += size;
  }
  await flush();
  return written;
}

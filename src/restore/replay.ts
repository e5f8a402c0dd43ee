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
      `${target}: the restore stopped after ${written} of ${total} keys were written (${oneLine(cause)})`,
      undefined,
      { cause },
    );
  }
}

export interface ReplayOptions {
  /**
   * Transactions in flight at once. Batches hold distinct keys, so their order does not matter;
   * a few in flight hide the round trip.
   * @defaultValue 4
   */
  inFlight?: number;
  /** Aborting stops sending: batches in flight are waited for, then the replay fails with how far it got. */
  signal?: AbortSignal;
  /**
   * Called as the batches confirmed so far, without a gap from the first, grow: with the last key of
   * the newest of them. For keys written in ascending order, every key up to it is then in the target.
   */
  onConfirmed?: (upTo: Buffer) => void;
}

/**
 * Writes the mapped records in transactions no larger than the target allows. A value too large to
 * share a batch goes alone. Returns the number of keys written. On failure, the count in the error is
 * what the target confirmed; batches still in flight then may or may not have landed.
 */
export async function replay(
  records: AsyncIterable<KvRecord>,
  scope: KeyScope,
  target: KvTarget,
  total: number,
  onWritten: (n: number) => void,
  options: ReplayOptions = {},
): Promise<number> {
  const { ops, bytes: maxBytes } = target.batchLimits;
  const inFlight = options.inFlight ?? 4;
  const running = new Set<Promise<void>>();
  let failure: ReplayError | undefined;
  let written = 0;
  let batch: KvRecord[] = [];
  let batchBytes = 0;
  // Batches finish out of order; `confirmed` counts those done without a gap from the first.
  let sent = 0;
  let confirmed = 0;
  const doneOutOfOrder = new Map<number, Buffer>();

  const send = async (): Promise<void> => {
    if (batch.length === 0) return;
    const sending = batch;
    batch = [];
    batchBytes = 0;
    while (running.size >= inFlight) await Promise.race(running);
    if (failure) return;
    const seq = sent++;
    const task = target.writeBatch(sending).then(
      () => {
        written += sending.length;
        onWritten(written);
        if (!options.onConfirmed) return;
        doneOutOfOrder.set(seq, (sending.at(-1) as KvRecord).key);
        let upTo: Buffer | undefined;
        for (let key = doneOutOfOrder.get(confirmed); key; key = doneOutOfOrder.get(confirmed)) {
          doneOutOfOrder.delete(confirmed++);
          upTo = key;
        }
        if (upTo) options.onConfirmed(upTo);
      },
      (err: unknown) => {
        failure ??= new ReplayError(written, total, target.description, err);
      },
    );
    const tracked = task.finally(() => running.delete(tracked));
    running.add(tracked);
  };

  const stop = (): void => {
    failure ??= new ReplayError(written, total, target.description, options.signal?.reason ?? new Error('aborted'));
  };
  if (options.signal?.aborted) stop();
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    for await (const record of records) {
      if (failure) break;
      const key = scope.map(record.key);
      if (!key) continue;
      const size = key.length + record.value.length;
      if (batch.length >= ops || (batch.length > 0 && batchBytes + size > maxBytes)) await send();
      batch.push(key === record.key ? record : { ...record, key });
      batchBytes += size;
    }
    if (!failure) await send();
  } finally {
    await Promise.all(running);
    options.signal?.removeEventListener('abort', stop);
  }
  if (failure) throw failure;
  return written;
}

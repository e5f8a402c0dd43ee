import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { KvRecord } from '../formats/record.js';
import { ConfigError, IntegrityError, InterruptedError, KvdrError, ScopeNotEmptyError, UsageError } from '../util/errors.js';
import type { ExitCode } from '../util/exit-codes.js';
import type { LocalArtifact } from './artifact.js';
import { framesOf } from './record-frames.js';

/**
 * Reading a streamed artifact (a kvdr export, a PX dump, a `consul kv export`) is mostly inflating,
 * parsing JSON and decoding base64: at a million keys, two thirds of a restore's plan pass, which runs
 * on one core while the target waits (nothing may be written before it ends). Here that reading runs
 * on a worker thread, which hands the records over as frames (record-frames.ts), and the plan's own
 * checks run beside it on the main thread.
 *
 * The records are the same as the format reader's, less what a restore does not use (revisions, PX
 * indexes); its errors arrive as the same one-line KvdrError with the same exit code. Memory holds at
 * most CHUNKS_AHEAD chunks in flight. Giving up a pass early stops the thread.
 */
export const CHUNK_BYTES = 1024 * 1024;
const CHUNKS_AHEAD = 3;

export interface ToWorker {
  artifact: LocalArtifact;
  prefix?: Uint8Array;
}

export type FromWorker =
  | { chunk: Buffer }
  | { end: { revision?: number; index?: number } }
  | { failure: { name: string; message: string; exitCode?: ExitCode } };

const WORKER = new URL('./record-worker.js', import.meta.url);

/** False where the worker's compiled file is absent (the sources run as TypeScript, as under the test runner): read on this thread. */
export function offThreadAvailable(): boolean {
  return existsSync(fileURLToPath(WORKER));
}

/** A pass over the artifact's records, read on a worker thread; `onEnd` hears the origin its reader found. */
export function recordsOffThread(artifact: LocalArtifact, prefix: Buffer | undefined, onEnd: (origin: { revision?: number; index?: number }) => void): AsyncIterable<KvRecord> {
  return { [Symbol.asyncIterator]: () => pass(artifact, prefix, onEnd)[Symbol.asyncIterator]() };
}

async function* pass(artifact: LocalArtifact, prefix: Buffer | undefined, onEnd: (origin: { revision?: number; index?: number }) => void): AsyncIterable<KvRecord> {
  const data: ToWorker = { artifact, ...(prefix ? { prefix: new Uint8Array(prefix) } : {}) };
  const worker = new Worker(WORKER, { workerData: data });
  const inbox = new Inbox(worker);
  try {
    worker.postMessage(CHUNKS_AHEAD);
    for (;;) {
      const message = await inbox.next();
      if ('chunk' in message) {
        worker.postMessage(1);
        yield* framesOf(Buffer.from(message.chunk.buffer, message.chunk.byteOffset, message.chunk.byteLength));
      } else if ('end' in message) {
        onEnd(message.end);
        return;
      } else {
        throw rebuilt(message.failure);
      }
    }
  } finally {
    await worker.terminate();
  }
}

/** The worker's messages in order; its death before it said `end` or `failure` is an error. */
class Inbox {
  private readonly queue: FromWorker[] = [];
  private waiting: { resolve: (m: FromWorker) => void; reject: (err: Error) => void } | undefined;
  private failed: Error | undefined;

  constructor(worker: Worker) {
    worker.on('message', (message: FromWorker) => {
      if (this.waiting) this.take().resolve(message);
      else this.queue.push(message);
    });
    worker.on('error', (err: Error) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`the thread reading the artifact stopped (exit code ${code})`)));
  }

  next(): Promise<FromWorker> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  private fail(err: Error): void {
    this.failed ??= err;
    if (this.waiting) this.take().reject(this.failed);
  }

  private take(): { resolve: (m: FromWorker) => void; reject: (err: Error) => void } {
    const waiting = this.waiting as NonNullable<typeof this.waiting>;
    this.waiting = undefined;
    return waiting;
  }
}

const KINDS: Record<string, new (message: string) => KvdrError> = { IntegrityError, UsageError, ConfigError, ScopeNotEmptyError, InterruptedError };

/** The worker's error as the main thread would have thrown it: same class where it is one of kvdr's, same message and exit code. */
function rebuilt(failure: { name: string; message: string; exitCode?: ExitCode }): Error {
  const Kind = KINDS[failure.name];
  if (Kind) return new Kind(failure.message);
  const error = failure.exitCode !== undefined ? new KvdrError(failure.message, failure.exitCode) : new Error(failure.message);
  error.name = failure.name;
  return error;
}

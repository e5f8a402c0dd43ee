import { parentPort, workerData } from 'node:worker_threads';
import { KvdrError } from '../util/errors.js';
import type { LocalArtifact } from './artifact.js';
import { openArtifact } from './local-artifact.js';
import { FramePacker } from './record-frames.js';
import { CHUNK_BYTES, type FromWorker, type ToWorker } from './off-thread.js';

/**
 * The thread that reads an artifact's records for `off-thread.ts`: inflates, parses and checks them
 * with the format's own reader and sends them on as frames, a chunk at a time, never more chunks
 * ahead than the main thread has asked for.
 */
const { artifact, prefix } = workerData as ToWorker;
const port = parentPort as NonNullable<typeof parentPort>;
let credit = 0;
let wake: (() => void) | undefined;
port.on('message', (more: number) => {
  credit += more;
  wake?.();
});

async function send(chunk: Buffer): Promise<void> {
  while (credit === 0) await new Promise<void>((resolve) => (wake = resolve));
  credit--;
  const message: FromWorker = { chunk };
  port.postMessage(message, [chunk.buffer as ArrayBuffer]);
}

async function run(source: LocalArtifact): Promise<void> {
  const reader = openArtifact(source);
  const packer = new FramePacker(CHUNK_BYTES);
  try {
    for await (const record of reader.records(prefix ? Buffer.from(prefix) : undefined)) {
      const full = packer.add(record);
      if (full) await send(full);
    }
    const rest = packer.take();
    if (rest) await send(rest);
    port.postMessage({ end: reader.origin() } satisfies FromWorker);
  } catch (err) {
    const failure = err instanceof KvdrError ? { name: err.name, message: err.message, exitCode: err.exitCode } : { name: 'Error', message: err instanceof Error ? err.message : String(err) };
    port.postMessage({ failure } satisfies FromWorker);
  } finally {
    await reader.close();
    port.close();
  }
}

void run(artifact);

import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KvRecord } from '../formats/record.js';
import { KvdrError, oneLine } from '../util/errors.js';
import { frameAt, frameSize, readFrame, writeFrame } from './record-frames.js';

/**
 * The plan pass's copy of exactly what the replay will write: each record that passed the checks, its
 * key already mapped into the scope, in a private temp file. The replay then reads these frames
 * instead of inflating and parsing the artifact a second time (at a million keys that second parse was
 * about a fifth of the restore's CPU, spent while etcd needed the same two cores), and it writes what
 * was checked even if the artifact file changes in between. Memory holds one chunk either way.
 *
 * The frames are record-frames' (key, value, Consul flags; leases are dropped, revisions are etcd's).
 */
export class Spool {
  private chunk = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private used = 0;
  private written = 0;
  private count = 0;
  private finished = false;

  private constructor(
    private readonly dir: string,
    private readonly path: string,
    private readonly file: FileHandle,
  ) {}

  /** A new spool in a directory only this user can read; `discard` removes it. */
  static async create(): Promise<Spool> {
    const dir = await mkdtemp(join(tmpdir(), 'kvdr-spool-'));
    try {
      const path = join(dir, 'records.bin');
      return new Spool(dir, path, await open(path, 'wx+', 0o600));
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw spoolError(err, dir);
    }
  }

  /** Records added so far. */
  get records(): number {
    return this.count;
  }

  /**
   * Appends a record (its bytes are copied). Returns a promise only when a full chunk goes to disk —
   * awaiting once per chunk, not per record, keeps the plan's loop synchronous almost always.
   */
  add(key: Buffer, value: Buffer, flags?: number): Promise<void> | undefined {
    const record: KvRecord = flags === undefined ? { key, value } : { key, value, flags };
    const size = frameSize(record);
    if (this.used + size > this.chunk.length) return this.addSlow(record, size);
    this.used = writeFrame(this.chunk, this.used, record);
    this.count++;
    return undefined;
  }

  /** Flushes what is buffered; after it, `read` may start. */
  async finish(): Promise<void> {
    await this.flush();
    this.finished = true;
  }

  /**
   * The records in the order they were added. Keys and values are views of the chunk they were read
   * in; every chunk is a fresh buffer, so a record stays valid while a transaction in flight holds it.
   */
  async *read(): AsyncIterable<KvRecord> {
    if (!this.finished) throw new Error('Spool.read before finish');
    let position = 0;
    let carry = Buffer.alloc(0);
    let seen = 0;
    for (;;) {
      // The next read continues the frame the last chunk ended inside of; a frame larger than a chunk gets a buffer of its own.
      const need = frameAt(carry, 0, carry.length) ?? 0;
      const buffer = Buffer.allocUnsafeSlow(Math.max(READ_BYTES, need));
      carry.copy(buffer, 0);
      const { bytesRead } = await this.file.read(buffer, carry.length, buffer.length - carry.length, position).catch((err: unknown) => {
        throw spoolError(err, this.dir);
      });
      position += bytesRead;
      const end = carry.length + bytesRead;
      if (bytesRead === 0) {
        if (carry.length > 0 || seen !== this.count) throw new KvdrError(`the restore's spool ${this.path} ends early (${seen} of ${this.count} records); it was changed while the restore ran`);
        return;
      }
      let at = 0;
      for (let size = frameAt(buffer, at, end); size !== undefined && end - at >= size; size = frameAt(buffer, at, end)) {
        seen++;
        yield readFrame(buffer, at);
        at += size;
      }
      carry = buffer.subarray(at, end);
    }
  }

  /** Closes and removes the spool; safe to call more than once. */
  async discard(): Promise<void> {
    await this.file.close().catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }

  private async addSlow(record: KvRecord, size: number): Promise<void> {
    await this.flush();
    if (size > this.chunk.length) this.chunk = Buffer.allocUnsafeSlow(size); // one large value; the next flush keeps it
    this.used = writeFrame(this.chunk, 0, record);
    this.count++;
  }

  private async flush(): Promise<void> {
    let from = 0;
    while (from < this.used) {
      const { bytesWritten } = await this.file.write(this.chunk, from, this.used - from, this.written).catch((err: unknown) => {
        throw spoolError(err, this.dir);
      });
      from += bytesWritten;
      this.written += bytesWritten;
    }
    this.used = 0;
  }
}

/** Bytes buffered before a write: a few hundred writes for a million small records. */
const CHUNK_BYTES = 1024 * 1024;
/** Bytes a read asks for. */
const READ_BYTES = 1024 * 1024;

function spoolError(err: unknown, dir: string): KvdrError {
  const code = (err as NodeJS.ErrnoException).code;
  const hint = code === 'ENOSPC' ? 'the disk is full; free space there or point TMPDIR at a larger disk' : oneLine(err);
  return new KvdrError(`cannot keep the restore's spool of checked records in ${dir}: ${hint}`, undefined, { cause: err });
}

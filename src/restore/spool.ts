import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KvRecord } from '../formats/record.js';
import { KvdrError, oneLine } from '../util/errors.js';

/**
 * The plan pass's copy of exactly what the replay will write: each record that passed the checks, its
 * key already mapped into the scope, in a private temp file. The replay then reads these frames
 * instead of inflating and parsing the artifact a second time (at a million keys that second parse was
 * about a fifth of the restore's CPU, spent while etcd needed the same two cores), and it writes what
 * was checked even if the artifact file changes in between. Memory holds one chunk either way.
 *
 * A frame: u32be key length, u32be value length, u8 1 when Consul flags follow (f64be) else 0, then the
 * key and value bytes. Nothing else of a record is replayed (leases are dropped, revisions are etcd's).
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
    const head = flags === undefined ? 9 : 17;
    const size = head + key.length + value.length;
    if (this.used + size > this.chunk.length) return this.addSlow(key, value, flags);
    this.frame(key, value, flags, head);
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
      const need = carry.length >= 9 ? frameBytes(carry) : 0;
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
      while (end - at >= 9) {
        const size = frameBytes(buffer, at);
        if (end - at < size) break;
        const keyLength = buffer.readUInt32BE(at);
        const hasFlags = buffer[at + 8] === 1;
        const body = at + (hasFlags ? 17 : 9);
        const record: KvRecord = { key: buffer.subarray(body, body + keyLength), value: buffer.subarray(body + keyLength, at + size) };
        if (hasFlags) record.flags = buffer.readDoubleBE(at + 9);
        seen++;
        yield record;
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

  private frame(key: Buffer, value: Buffer, flags: number | undefined, head: number): void {
    const c = this.chunk;
    let at = this.used;
    c.writeUInt32BE(key.length, at);
    c.writeUInt32BE(value.length, at + 4);
    c[at + 8] = flags === undefined ? 0 : 1;
    if (flags !== undefined) c.writeDoubleBE(flags, at + 9);
    at += head;
    key.copy(c, at);
    value.copy(c, at + key.length);
    this.used = at + key.length + value.length;
    this.count++;
  }

  private async addSlow(key: Buffer, value: Buffer, flags: number | undefined): Promise<void> {
    await this.flush();
    const head = flags === undefined ? 9 : 17;
    const size = head + key.length + value.length;
    if (size > this.chunk.length) this.chunk = Buffer.allocUnsafeSlow(size); // one large value; the next flush keeps it
    this.frame(key, value, flags, head);
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

/** The size of the frame starting at `at` (its header must be there). */
function frameBytes(buffer: Buffer, at = 0): number {
  return (buffer[at + 8] === 1 ? 17 : 9) + buffer.readUInt32BE(at) + buffer.readUInt32BE(at + 4);
}

function spoolError(err: unknown, dir: string): KvdrError {
  const code = (err as NodeJS.ErrnoException).code;
  const hint = code === 'ENOSPC' ? 'the disk is full; free space there or point TMPDIR at a larger disk' : oneLine(err);
  return new KvdrError(`cannot keep the restore's spool of checked records in ${dir}: ${hint}`, undefined, { cause: err });
}

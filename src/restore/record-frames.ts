import type { KvRecord } from '../formats/record.js';

/**
 * The binary form a restore moves checked records in, between its passes (the spool on disk) and
 * between threads (records parsed off the main thread): what a replay writes and what the plan counts,
 * nothing else. A frame is
 *
 *   u32be key length, u32be value length, u8 bits, [f64be Consul flags], [u8 n, n ASCII digits: lease], key, value
 *
 * where bit 1 says the flags follow and bit 2 the lease. Revisions and versions are not carried: a
 * replay cannot keep them (etcd assigns its own).
 */
const HAS_FLAGS = 1;
const HAS_LEASE = 2;
const HEAD = 9;

/** The bytes a record's frame takes. */
export function frameSize(record: KvRecord): number {
  return HEAD + (record.flags === undefined ? 0 : 8) + (hasLease(record) ? 1 + (record.lease as string).length : 0) + record.key.length + record.value.length;
}

/** Writes the record's frame at `at` (room for frameSize bytes is the caller's); returns where it ends. */
export function writeFrame(out: Buffer, at: number, record: KvRecord): number {
  const { key, value, flags } = record;
  const lease = hasLease(record) ? (record.lease as string) : undefined;
  out.writeUInt32BE(key.length, at);
  out.writeUInt32BE(value.length, at + 4);
  out[at + 8] = (flags === undefined ? 0 : HAS_FLAGS) | (lease === undefined ? 0 : HAS_LEASE);
  at += HEAD;
  if (flags !== undefined) at = out.writeDoubleBE(flags, at);
  if (lease !== undefined) {
    out[at] = lease.length;
    at += 1 + out.write(lease, at + 1, 'latin1');
  }
  at += key.copy(out, at);
  return at + value.copy(out, at);
}

/** The size of the frame starting at `at`, or undefined when fewer than its fixed part are there. */
export function frameAt(buffer: Buffer, at: number, end: number): number | undefined {
  if (end - at < HEAD) return undefined;
  const bits = buffer[at + 8] as number;
  let head = HEAD + (bits & HAS_FLAGS ? 8 : 0);
  if (bits & HAS_LEASE) {
    if (end - at < head + 1) return undefined;
    head += 1 + (buffer[at + head] as number);
  }
  return head + buffer.readUInt32BE(at) + buffer.readUInt32BE(at + 4);
}

/** The record of the whole frame at `at`; its key and value are views of `buffer`. */
export function readFrame(buffer: Buffer, at: number): KvRecord {
  const keyLength = buffer.readUInt32BE(at);
  const valueLength = buffer.readUInt32BE(at + 4);
  const bits = buffer[at + 8] as number;
  let body = at + HEAD;
  const record: KvRecord = { key: buffer, value: buffer };
  if (bits & HAS_FLAGS) {
    record.flags = buffer.readDoubleBE(body);
    body += 8;
  }
  if (bits & HAS_LEASE) {
    const length = buffer[body] as number;
    record.lease = buffer.toString('latin1', body + 1, body + 1 + length);
    body += 1 + length;
  }
  record.key = buffer.subarray(body, body + keyLength);
  record.value = buffer.subarray(body + keyLength, body + keyLength + valueLength);
  return record;
}

function hasLease(record: KvRecord): boolean {
  return record.lease !== undefined && record.lease !== '0';
}

/**
 * Packs frames into chunks of `chunkBytes` (a frame larger than that gets a chunk of its own). Each
 * chunk is a fresh buffer with an ArrayBuffer of its own, so it can be handed to another thread or
 * kept by a reader while the next one fills.
 */
export class FramePacker {
  private chunk: Buffer;
  private used = 0;

  constructor(private readonly chunkBytes: number) {
    this.chunk = Buffer.allocUnsafeSlow(chunkBytes);
  }

  /** Adds a record; returns the chunk it completed, if it did. */
  add(record: KvRecord): Buffer | undefined {
    const size = frameSize(record);
    let full: Buffer | undefined;
    if (this.used + size > this.chunk.length) {
      full = this.take();
      if (size > this.chunkBytes) this.chunk = Buffer.allocUnsafeSlow(size);
    }
    this.used = writeFrame(this.chunk, this.used, record);
    return full;
  }

  /** The frames packed so far (possibly none), as a chunk of their own; packing starts afresh. */
  take(): Buffer | undefined {
    if (this.used === 0) return undefined;
    const full = this.chunk.subarray(0, this.used);
    this.chunk = Buffer.allocUnsafeSlow(this.chunkBytes);
    this.used = 0;
    return full;
  }
}

/** The records of a buffer holding whole frames. */
export function* framesOf(buffer: Buffer): Iterable<KvRecord> {
  for (let at = 0; at < buffer.length; ) {
    const size = frameAt(buffer, at, buffer.length) as number;
    yield readFrame(buffer, at);
    at += size;
  }
}

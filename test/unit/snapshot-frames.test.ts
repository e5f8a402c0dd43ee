import { describe, expect, it } from 'vitest';
import { SnapshotFrames } from '../../src/sources/etcd/snapshot-frames.js';

// SnapshotResponse as etcd's gRPC server writes it, built here field by field (rpc.proto):
// header 1 {cluster_id 1, member_id 2, revision 3, raft_term 4}, remaining_bytes 2, blob 3, version 4.
function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 128) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}
const lengthField = (field: number, bytes: Buffer): Buffer => Buffer.concat([varint((field << 3) | 2), varint(bytes.length), bytes]);
const varintField = (field: number, n: number): Buffer => Buffer.concat([varint(field << 3), varint(n)]);

function message(fields: { revision?: number; remaining?: number; blob?: Buffer; version?: string }): Buffer {
  const parts: Buffer[] = [];
  if (fields.revision !== undefined) {
    // Large ids, as a real cluster has: 64-bit varints that the parser must step over.
    const header = Buffer.concat([varintField(1, 2 ** 52 + 7), varintField(2, 2 ** 50 + 3), varintField(3, fields.revision), varintField(4, 9)]);
    parts.push(lengthField(1, header));
  }
  if (fields.remaining !== undefined) parts.push(varintField(2, fields.remaining));
  if (fields.blob !== undefined) parts.push(lengthField(3, fields.blob));
  if (fields.version !== undefined) parts.push(lengthField(4, Buffer.from(fields.version)));
  const body = Buffer.concat(parts);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

const pattern = (length: number, seed: number): Buffer => Buffer.from(Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff));

/** Feeds `chunks` through a parser; resolves with its output and revision, or rejects with its failure. */
async function parse(chunks: Buffer[], ended: () => Error | undefined = () => undefined): Promise<{ bytes: Buffer; revision: number | undefined; boundary: boolean }> {
  const frames = new SnapshotFrames(ended);
  const out: Buffer[] = [];
  frames.on('data', (b: Buffer) => out.push(b));
  const done = new Promise<void>((resolve, reject) => {
    frames.on('end', resolve);
    frames.on('error', reject);
  });
  for (const chunk of chunks) frames.write(chunk);
  frames.end();
  await done;
  return { bytes: Buffer.concat(out), revision: frames.revision(), boundary: frames.atMessageBoundary() };
}

const blobs = [pattern(300, 1), pattern(20_000, 2), Buffer.alloc(0), pattern(1, 3)];
const stream = Buffer.concat([
  message({ revision: 123_456_789, remaining: 20_301, blob: blobs[0], version: '3.6.0' }),
  message({ remaining: 301, blob: blobs[1] }),
  message({ remaining: 1, blob: blobs[2] }),
  message({}),
  message({ remaining: 0, blob: blobs[3] }),
]);
const expected = Buffer.concat(blobs);

describe('SnapshotFrames', () => {
  it('yields exactly the blobs, and the first header revision, however the body is split', async () => {
    // Every split into two pieces (every field and varint boundary among them), and one byte at a time.
    for (let at = 0; at <= stream.length; at += at < 400 || at > stream.length - 400 ? 1 : 97) {
      const result = await parse([stream.subarray(0, at), stream.subarray(at)]);
      expect(result.bytes.equals(expected), `split at ${at}`).toBe(true);
      expect(result.revision).toBe(123_456_789);
    }
    const bytewise = await parse(Array.from(stream, (b) => Buffer.from([b])));
    expect(bytewise.bytes.equals(expected)).toBe(true);
  });

  it('passes blob bytes on as views of the chunks they arrived in, not copies', async () => {
    const frames = new SnapshotFrames(() => undefined);
    const seen: Buffer[] = [];
    frames.on('data', (b: Buffer) => seen.push(b));
    frames.write(stream);
    frames.end();
    await new Promise((resolve) => frames.on('end', resolve));
    expect(seen.length).toBeGreaterThan(0);
    for (const b of seen) expect(b.buffer).toBe(stream.buffer);
  });

  it('has no revision when etcd sends no header (etcd 3.4)', async () => {
    const result = await parse([message({ remaining: 0, blob: pattern(10, 5) })]);
    expect(result.revision).toBeUndefined();
    expect(result.bytes.equals(pattern(10, 5))).toBe(true);
  });

  it('reports a body cut inside a message to the end check', async () => {
    for (const at of [2, 5, 9, stream.length - 1]) {
      const result = await parse([stream.subarray(0, at)]);
      expect(result.boundary, `cut at ${at}`).toBe(false);
    }
    const failure = parse([stream.subarray(0, 100)], () => new Error('cut short'));
    await expect(failure).rejects.toThrow('cut short');
  });

  it('refuses compressed messages, wire types it does not read and lengths past the message', async () => {
    const compressed = Buffer.from(message({ blob: pattern(4, 0) }));
    compressed[0] = 1;
    await expect(parse([compressed])).rejects.toThrow(/compressed gRPC message/);
    const fixed64 = Buffer.concat([Buffer.from([0, 0, 0, 0, 9, (5 << 3) | 1]), Buffer.alloc(8)]);
    await expect(parse([fixed64])).rejects.toThrow(/wire type 1/);
    const overlong = Buffer.concat([Buffer.from([0, 0, 0, 0, 3, (3 << 3) | 2, 100]), Buffer.from([1])]);
    await expect(parse([overlong])).rejects.toThrow(/truncated/);
    // The header is held in memory to read the revision: a huge one is refused, not collected.
    const hugeHeader = Buffer.concat([Buffer.from([0, 0, 0x10, 0, 5, (1 << 3) | 2, 0x80, 0x80, 0x40]), Buffer.alloc(64)]);
    await expect(parse([hugeHeader])).rejects.toThrow(/snapshot header of 1048576 bytes/);
  });
});

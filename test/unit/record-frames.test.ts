import { describe, expect, it } from 'vitest';
import type { KvRecord } from '../../src/formats/record.js';
import { FramePacker, frameAt, frameSize, framesOf } from '../../src/restore/record-frames.js';

const records: KvRecord[] = [
  { key: Buffer.from('a'), value: Buffer.from('1') },
  { key: Buffer.alloc(0), value: Buffer.alloc(0) }, // the empty key (a PX dump's domain key) and an empty value
  { key: Buffer.from([0xff, 0x00, 0x80]), value: Buffer.from('binary key'), flags: 42 },
  { key: Buffer.from('leased'), value: Buffer.from('x'), lease: '7587883471113469953' },
  { key: Buffer.from('no lease'), value: Buffer.from('y'), lease: '0' }, // "0" is no lease, as etcd says
  { key: Buffer.from('both'), value: Buffer.alloc(3000, 5), flags: 0, lease: '12' },
  { key: Buffer.from('big'), value: Buffer.alloc(70_000, 9) }, // larger than the packer's chunk below
  { key: Buffer.from('after'), value: Buffer.from('z'), flags: 2 ** 32 - 1 },
];

describe('record frames', () => {
  it('carry key, value, Consul flags and lease through packing, chunk by chunk, a frame larger than a chunk in its own', () => {
    const packer = new FramePacker(64 * 1024);
    const chunks: Buffer[] = [];
    for (const r of records) {
      const full = packer.add(r);
      if (full) chunks.push(full);
    }
    chunks.push(packer.take() as Buffer);
    expect(packer.take()).toBeUndefined();
    expect(chunks.length).toBe(3);
    const back = chunks.flatMap((chunk) => [...framesOf(chunk)]);
    expect(back.map((r) => [r.key.toString('hex'), r.value.toString('hex'), r.flags, r.lease])).toEqual(
      records.map((r) => [r.key.toString('hex'), r.value.toString('hex'), r.flags, r.lease === '0' ? undefined : r.lease]),
    );
    // Every chunk has an ArrayBuffer of its own, so it can be transferred to another thread.
    for (const chunk of chunks) expect(chunk.byteOffset).toBe(0);
    expect(new Set(chunks.map((c) => c.buffer)).size).toBe(chunks.length);
  });

  it('tells how long a frame is only once its fixed part is there', () => {
    const packer = new FramePacker(1024);
    packer.add(records[5] as KvRecord);
    const chunk = packer.take() as Buffer;
    expect(frameAt(chunk, 0, chunk.length)).toBe(frameSize(records[5] as KvRecord));
    expect(frameAt(chunk, 0, 8)).toBeUndefined(); // less than the head
    expect(frameAt(chunk, 0, 9 + 8)).toBeUndefined(); // flags there, the lease's length not yet
    expect(frameAt(chunk, 0, 9 + 8 + 1)).toBe(chunk.length);
  });
});

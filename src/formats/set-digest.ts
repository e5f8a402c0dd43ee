import { createHash, hash } from 'node:crypto';

/**
 * A digest of a set of key/value pairs that does not depend on their order: the sum, modulo 2^256,
 * of sha256(u32be(len key) key u32be(len value) value) over the pairs. A restore computes it over
 * what it meant to write and again over what the target holds afterwards; PX dumps are not in key
 * order, so an ordered digest could not compare them.
 *
 * It runs once per record in the plan pass and again in verification, so it is kept cheap: one
 * one-shot hash over a reused scratch buffer, and the sum in eight 32-bit limbs (no BigInt per record).
 */
export class SetDigest {
  /** Big-endian limbs of the running sum: sum[0] is the most significant. */
  private readonly sum = new Uint32Array(8);
  private n = 0;
  private scratch = Buffer.allocUnsafe(4096);

  add(key: Buffer, value: Buffer): void {
    const size = 8 + key.length + value.length;
    if (size > this.scratch.length) this.scratch = Buffer.allocUnsafe(Math.max(size, this.scratch.length * 2));
    const s = this.scratch;
    s.writeUInt32BE(key.length, 0);
    key.copy(s, 4);
    s.writeUInt32BE(value.length, 4 + key.length);
    value.copy(s, 8 + key.length);
    const h = hash('sha256', s.subarray(0, size), 'buffer') as unknown as Buffer;
    let carry = 0;
    for (let i = 7; i >= 0; i--) {
      const total = (this.sum[i] as number) + h.readUInt32BE(i * 4) + carry;
      this.sum[i] = total >>> 0;
      carry = total > 0xffffffff ? 1 : 0;
    }
    this.n++;
  }

  get count(): number {
    return this.n;
  }

  digest(): string {
    let out = '';
    for (const limb of this.sum) out += limb.toString(16).padStart(8, '0');
    return out;
  }
}

/**
 * The ordered counterpart of SetDigest for pairs that come in strictly ascending key order: sha256 over
 * u32be(len key) key u32be(len value) value of each pair in turn. Two strictly ascending sequences are
 * the same set exactly when they are the same sequence, so where both sides are in key order (a plan of
 * an export or snapshot, and etcd reading the scope back) this proves the same thing as SetDigest at a
 * seventh of the cost: one streaming hash fed 64 KiB at a time instead of one hash per pair.
 */
export class SequenceDigest {
  private readonly hash = createHash('sha256');
  private readonly staged = Buffer.allocUnsafe(64 * 1024);
  private used = 0;
  private n = 0;

  /** The caller sees to the order: a pair out of order makes this digest prove nothing about a set. */
  add(key: Buffer, value: Buffer): void {
    this.n++;
    const size = 8 + key.length + value.length;
    if (this.used + size > this.staged.length) this.drain();
    if (size > this.staged.length) {
      // A pair larger than the staging buffer goes straight to the hash.
      const length = Buffer.allocUnsafe(4);
      length.writeUInt32BE(key.length);
      this.hash.update(length).update(key);
      length.writeUInt32BE(value.length);
      this.hash.update(length).update(value);
      return;
    }
    const s = this.staged;
    s.writeUInt32BE(key.length, this.used);
    key.copy(s, this.used + 4);
    s.writeUInt32BE(value.length, this.used + 4 + key.length);
    value.copy(s, this.used + 8 + key.length);
    this.used += size;
  }

  get count(): number {
    return this.n;
  }

  digest(): string {
    this.drain();
    return this.hash.digest('hex');
  }

  private drain(): void {
    if (this.used > 0) this.hash.update(this.staged.subarray(0, this.used));
    this.used = 0;
  }
}

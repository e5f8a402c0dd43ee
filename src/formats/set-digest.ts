import { hash } from 'node:crypto';

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

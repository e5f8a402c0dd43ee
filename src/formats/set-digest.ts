import { createHash } from 'node:crypto';

const MOD = 1n << 256n;

/**
 * A digest of a set of key/value pairs that does not depend on their order: the sum, modulo 2^256,
 * of sha256(u32be(len key) key u32be(len value) value) over the pairs. A restore computes it over
 * what it meant to write and again over what the target holds afterwards; PX dumps are not in key
 * order, so an ordered digest could not compare them.
 */
export class SetDigest {
  private sum = 0n;
  private n = 0;
  private readonly length = Buffer.alloc(4);

  add(key: Buffer, value: Buffer): void {
    const hash = createHash('sha256');
    this.length.writeUInt32BE(key.length);
    hash.update(this.length).update(key);
    this.length.writeUInt32BE(value.length);
    hash.update(this.length).update(value);
    this.sum = (this.sum + BigInt(`0x${hash.digest('hex')}`)) % MOD;
    this.n++;
  }

  get count(): number {
    return this.n;
  }

  digest(): string {
    return this.sum.toString(16).padStart(64, '0');
  }
}

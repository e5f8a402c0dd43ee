import { createHash, type Hash } from 'node:crypto';

/**
 * A digest of a set of key/value pairs that does not depend on the format they travel in: sha256 over
 * `u32be(len(key)) key u32be(len(value)) value` for each pair in ascending byte order of key. An export's
 * trailer carries it, and a restore recomputes it from the target to prove what was written.
 */
export class RecordDigest {
  private readonly hash: Hash = createHash('sha256');
  private previous: Buffer | undefined;
  private count = 0;
  /** Reused: hash.update copies its input, so one small buffer serves every length prefix. */
  private readonly length = Buffer.alloc(4);

  add(key: Buffer, value: Buffer): void {
    if (this.previous && Buffer.compare(this.previous, key) >= 0) {
      throw new Error(`RecordDigest: keys must be added in ascending order (${key.toString('hex')} after ${this.previous.toString('hex')})`);
    }
    this.previous = key;
    this.count++;
    this.length.writeUInt32BE(key.length);
    this.hash.update(this.length);
    this.hash.update(key);
    this.length.writeUInt32BE(value.length);
    this.hash.update(this.length);
    this.hash.update(value);
  }

  get records(): number {
    return this.count;
  }

  digest(): string {
    return this.hash.digest('hex');
  }
}

import { formatBytes } from '../util/table.js';

/**
 * Finds where each top-level msgpack value of a byte stream ends, reading only type bytes and lengths,
 * never decoding. @msgpack/msgpack has no such call, and its stream decoder cannot be used on hostile
 * input: it allocates `new Array(n)` for an array header before any element has arrived (a 3-byte
 * array16 header costs 512 KiB, so nested headers cost gigabytes), and it ends silently on a value cut
 * in half. Framing first lets a reader hand the library only whole values no longer than
 * `maxValueBytes`, whose every declared element is present (so what decoding allocates is bounded by
 * the value's own size), and skip the values it has no use for without decoding them at all.
 *
 * The framer works across chunk boundaries and holds only the bytes of a value it was asked to keep.
 */
export class MsgpackFramer {
  /** Whether the value that starts next is handed to `onValue` with its bytes (else `undefined`). */
  keep = true;
  private offset = 0; // bytes consumed before the current chunk
  private valueStart = 0;
  /** Values still to read before the current top-level value is complete; 0 between values. */
  private pending = 0;
  /** Payload bytes of the current str/bin/ext/number still to skip. */
  private skip = 0;
  /** Length bytes still to read after a head byte, and what they count. */
  private need = 0;
  private length = 0;
  private head = 0;
  private kept: Buffer[] = [];

  /** @param refuse turns what is wrong ("byte 12 is 0xc1, …") into the error to throw. */
  constructor(
    private readonly refuse: (what: string) => Error,
    private readonly maxValueBytes: number,
    private readonly onValue: (bytes: Buffer | undefined, start: number) => void,
  ) {}

  /** True when the bytes so far end between two values. */
  get atBoundary(): boolean {
    return this.pending === 0 && this.skip === 0 && this.need === 0;
  }

  /** Bytes consumed so far. */
  get position(): number {
    return this.offset;
  }

  feed(chunk: Buffer): void {
    let keptFrom = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.skip > 0) {
        const take = Math.min(this.skip, chunk.length - i);
        this.skip -= take;
        i += take;
      } else if (this.need > 0) {
        this.length = this.length * 256 + (chunk[i++] as number);
        if (--this.need === 0) this.counted(this.head, this.length);
      } else {
        if (this.pending === 0) {
          this.valueStart = this.offset + i;
          this.pending = 1;
          keptFrom = i;
        }
        this.pending--;
        this.headByte(chunk[i] as number, this.offset + i);
        i++;
      }
      const size = this.offset + i - this.valueStart;
      if (size + this.skip + this.need + this.pending > this.maxValueBytes) {
        throw this.refuse(`the msgpack value at byte ${this.valueStart} is, or declares itself, larger than the ${formatBytes(this.maxValueBytes)} record limit`);
      }
      if (this.atBoundary) {
        const bytes = this.keep ? this.take(chunk.subarray(keptFrom, i)) : undefined;
        keptFrom = i;
        this.onValue(bytes, this.valueStart);
      }
    }
    if (!this.atBoundary && this.keep && keptFrom < chunk.length) this.kept.push(chunk.subarray(keptFrom));
    this.offset += chunk.length;
  }

  private take(last: Buffer): Buffer {
    if (this.kept.length === 0) return last;
    const bytes = Buffer.concat([...this.kept, last]);
    this.kept = [];
    return bytes;
  }

  /** What follows a head byte (msgpack spec, "formats"). */
  private headByte(b: number, at: number): void {
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return; // fixints, nil, bools
    if (b <= 0x8f) this.pending += 2 * (b & 0x0f); // fixmap
    else if (b <= 0x9f) this.pending += b & 0x0f; // fixarray
    else if (b <= 0xbf) this.skip = b & 0x1f; // fixstr
    else if (b in FIXED) this.skip = FIXED[b] as number;
    else if (b in LENGTH_BYTES) {
      this.head = b;
      this.need = LENGTH_BYTES[b] as number;
      this.length = 0;
    } else throw this.refuse(`byte ${at} is 0x${b.toString(16)}, which msgpack never uses`);
  }

  private counted(head: number, n: number): void {
    if (head <= 0xc6 || (head >= 0xd9 && head <= 0xdb)) this.skip = n; // bin, str
    else if (head <= 0xc9) this.skip = n + 1; // ext: type byte, then data
    else if (head <= 0xdd) this.pending += n; // array
    else this.pending += 2 * n; // map
  }
}

/** Head bytes followed by a fixed number of payload bytes: numbers and fixext (type byte + data). */
const FIXED: Record<number, number> = {
  0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8,
  0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9, 0xd8: 17,
};

/** Head bytes followed by a big-endian length: bin, ext, str, array, map. */
const LENGTH_BYTES: Record<number, number> = {
  0xc4: 1, 0xc5: 2, 0xc6: 4, 0xc7: 1, 0xc8: 2, 0xc9: 4, 0xd9: 1, 0xda: 2, 0xdb: 4, 0xdc: 2, 0xdd: 4, 0xde: 2, 0xdf: 4,
};

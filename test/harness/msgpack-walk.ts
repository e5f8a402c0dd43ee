/**
 * A small, bounded msgpack decoder for the fuzz test's reference reading of Consul's state.bin. It
 * is independent of the library kvdr uses, checks every declared length against the bytes left
 * (so a hostile 4 GB length costs nothing), and limits nesting. Strings and binaries both come back
 * as Buffers (Consul's codec writes []byte as str); map keys as latin1 strings.
 */

export type MsgValue = null | boolean | number | bigint | Buffer | MsgValue[] | Map<string, MsgValue> | { ext: number };

export class MsgpackError extends Error {}

const MAX_DEPTH = 1000;

export function decodeAt(buf: Buffer, at: number, depth = 0): { value: MsgValue; end: number } {
  if (depth > MAX_DEPTH) throw new MsgpackError(`nesting deeper than ${MAX_DEPTH} at byte ${at}`);
  const need = (n: number): void => {
    if (at + n > buf.length) throw new MsgpackError(`value at byte ${at} needs ${n} bytes, ${buf.length - at} left`);
  };
  need(1);
  const b = buf[at] as number;
  const bytesOf = (start: number, length: number): { value: Buffer; end: number } => {
    if (start + length > buf.length) throw new MsgpackError(`a ${length}-byte string at byte ${at} runs past the end`);
    return { value: buf.subarray(start, start + length), end: start + length };
  };
  const array = (start: number, count: number): { value: MsgValue[]; end: number } => {
    if (count > buf.length - start) throw new MsgpackError(`an array of ${count} at byte ${at} cannot fit`);
    const out: MsgValue[] = [];
    let pos = start;
    for (let i = 0; i < count; i++) {
      const item = decodeAt(buf, pos, depth + 1);
      out.push(item.value);
      pos = item.end;
    }
    return { value: out, end: pos };
  };
  const map = (start: number, count: number): { value: Map<string, MsgValue>; end: number } => {
    if (count * 2 > buf.length - start) throw new MsgpackError(`a map of ${count} at byte ${at} cannot fit`);
    const out = new Map<string, MsgValue>();
    let pos = start;
    for (let i = 0; i < count; i++) {
      const key = decodeAt(buf, pos, depth + 1);
      const value = decodeAt(buf, key.end, depth + 1);
      // Consul's struct fields are string keys; any other key type names no field.
      const name = Buffer.isBuffer(key.value) ? key.value.toString('latin1') : `\u0000${typeof key.value}`;
      out.set(name, value.value);
      pos = value.end;
    }
    return { value: out, end: pos };
  };
  if (b <= 0x7f) return { value: b, end: at + 1 };
  if (b >= 0xe0) return { value: b - 0x100, end: at + 1 };
  if ((b & 0xf0) === 0x80) return map(at + 1, b & 0x0f);
  if ((b & 0xf0) === 0x90) return array(at + 1, b & 0x0f);
  if ((b & 0xe0) === 0xa0) return bytesOf(at + 1, b & 0x1f);
  switch (b) {
    case 0xc0:
      return { value: null, end: at + 1 };
    case 0xc2:
      return { value: false, end: at + 1 };
    case 0xc3:
      return { value: true, end: at + 1 };
    case 0xc4:
    case 0xd9:
      need(2);
      return bytesOf(at + 2, buf.readUInt8(at + 1));
    case 0xc5:
    case 0xda:
      need(3);
      return bytesOf(at + 3, buf.readUInt16BE(at + 1));
    case 0xc6:
    case 0xdb:
      need(5);
      return bytesOf(at + 5, buf.readUInt32BE(at + 1));
    case 0xca:
      need(5);
      return { value: buf.readFloatBE(at + 1), end: at + 5 };
    case 0xcb:
      need(9);
      return { value: buf.readDoubleBE(at + 1), end: at + 9 };
    case 0xcc:
      need(2);
      return { value: buf.readUInt8(at + 1), end: at + 2 };
    case 0xcd:
      need(3);
      return { value: buf.readUInt16BE(at + 1), end: at + 3 };
    case 0xce:
      need(5);
      return { value: buf.readUInt32BE(at + 1), end: at + 5 };
    case 0xcf:
      need(9);
      return { value: buf.readBigUInt64BE(at + 1), end: at + 9 };
    case 0xd0:
      need(2);
      return { value: buf.readInt8(at + 1), end: at + 2 };
    case 0xd1:
      need(3);
      return { value: buf.readInt16BE(at + 1), end: at + 3 };
    case 0xd2:
      need(5);
      return { value: buf.readInt32BE(at + 1), end: at + 5 };
    case 0xd3:
      need(9);
      return { value: buf.readBigInt64BE(at + 1), end: at + 9 };
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: {
      const length = 1 << (b - 0xd4);
      need(2 + length);
      return { value: { ext: buf.readInt8(at + 1) }, end: at + 2 + length };
    }
    case 0xc7:
    case 0xc8:
    case 0xc9: {
      const width = b === 0xc7 ? 1 : b === 0xc8 ? 2 : 4;
      need(1 + width + 1);
      const length = width === 1 ? buf.readUInt8(at + 1) : width === 2 ? buf.readUInt16BE(at + 1) : buf.readUInt32BE(at + 1);
      need(1 + width + 1 + length);
      return { value: { ext: buf.readInt8(at + 1 + width) }, end: at + 2 + width + length };
    }
    case 0xdc:
      need(3);
      return array(at + 3, buf.readUInt16BE(at + 1));
    case 0xdd:
      need(5);
      return array(at + 5, buf.readUInt32BE(at + 1));
    case 0xde:
      need(3);
      return map(at + 3, buf.readUInt16BE(at + 1));
    case 0xdf:
      need(5);
      return map(at + 5, buf.readUInt32BE(at + 1));
    default:
      throw new MsgpackError(`byte 0x${b.toString(16)} at ${at} starts no msgpack value`);
  }
}

/** A msgpack encoder for the few shapes the hostile corpus writes (maps of strings, ints, bytes). */
export function encodeValue(value: MsgValue | string | Record<string, unknown>): Buffer {
  if (value === null) return Buffer.from([0xc0]);
  if (typeof value === 'boolean') return Buffer.from([value ? 0xc3 : 0xc2]);
  if (typeof value === 'number' || typeof value === 'bigint') {
    const n = BigInt(value);
    if (n >= 0n && n < 128n) return Buffer.from([Number(n)]);
    const out = Buffer.alloc(9);
    out[0] = 0xcf;
    out.writeBigUInt64BE(BigInt.asUintN(64, n), 1);
    return out;
  }
  if (typeof value === 'string' || Buffer.isBuffer(value)) {
    const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
    const head = Buffer.alloc(5);
    head[0] = 0xdb;
    head.writeUInt32BE(bytes.length, 1);
    return Buffer.concat([head, bytes]);
  }
  if (Array.isArray(value)) {
    const head = Buffer.alloc(5);
    head[0] = 0xdd;
    head.writeUInt32BE(value.length, 1);
    return Buffer.concat([head, ...value.map((v) => encodeValue(v))]);
  }
  const entries = value instanceof Map ? [...value.entries()] : Object.entries(value);
  const head = Buffer.alloc(5);
  head[0] = 0xdf;
  head.writeUInt32BE(entries.length, 1);
  return Buffer.concat([head, ...entries.flatMap(([k, v]) => [encodeValue(k), encodeValue(v as MsgValue)])]);
}

import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';

/**
 * Just enough tar for the restore fuzz test: a ustar writer that will write hostile headers (links,
 * traversal names, absurd sizes) that real tar libraries refuse to produce, and a strict reader used
 * as the reference decoder of Consul snapshots. Written from the POSIX ustar layout.
 */

const BLOCK = 512;

export interface TarEntrySpec {
  name: string;
  body?: Buffer;
  /** '0' file, '1' hard link, '2' symlink, '3' char device, '5' directory, '6' fifo, 'x' PAX header. */
  type?: string;
  linkname?: string;
  /** Override the declared size: a number (octal), or a bigint written in GNU base-256. */
  size?: number | bigint;
  /** Write the body or not (a header that declares more than follows). @defaultValue true */
  writeBody?: boolean;
}

function octal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
}

/** One header block (plus body and padding, unless told otherwise). */
export function tarEntry(spec: TarEntrySpec): Buffer {
  const body = spec.body ?? Buffer.alloc(0);
  const header = Buffer.alloc(BLOCK);
  const name = Buffer.from(spec.name, 'utf8');
  if (name.length > 100) throw new Error(`tar name too long for a plain header: ${spec.name}`);
  name.copy(header, 0);
  octal(header, 100, 8, spec.type === '5' ? 0o755 : 0o600);
  octal(header, 108, 8, 0);
  octal(header, 116, 8, 0);
  const size = spec.size ?? body.length;
  if (typeof size === 'bigint') {
    // GNU base-256: high bit of the first byte set, the number big-endian in the rest of the field.
    let v = size;
    for (let i = 135; i > 124; i--) {
      header[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    header[124] = 0x80;
  } else {
    octal(header, 124, 12, size);
  }
  octal(header, 136, 12, 1_700_000_000);
  header.write(spec.type ?? '0', 156, 1, 'latin1');
  if (spec.linkname) header.write(spec.linkname, 157, 100, 'utf8');
  header.write('ustar\0', 257, 6, 'latin1');
  header.write('00', 263, 2, 'latin1');
  header.write('root', 265, 32, 'latin1');
  header.write('root', 297, 32, 'latin1');
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  if (spec.writeBody === false) return header;
  const padding = (BLOCK - (body.length % BLOCK)) % BLOCK;
  return Buffer.concat([header, body, Buffer.alloc(padding)]);
}

/** A PAX extended header ('x') carrying these records for the entry that follows it. */
export function paxEntry(records: Record<string, string>): Buffer {
  const lines = Object.entries(records).map(([key, value]) => {
    const rest = ` ${key}=${value}\n`;
    let length = Buffer.byteLength(rest) + 1;
    while (String(length).length + Buffer.byteLength(rest) !== length) length++;
    return `${length}${rest}`;
  });
  return tarEntry({ name: 'PaxHeaders/x', type: 'x', body: Buffer.from(lines.join('')) });
}

/** Entries followed by the two zero blocks that end an archive (as Go's tar.Writer writes them). */
export function tarArchive(entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, Buffer.alloc(2 * BLOCK)]);
}

export interface TarMember {
  name: string;
  type: string;
  body: Buffer;
}

export type TarParse = { ok: true; members: TarMember[] } | { ok: false; why: string };

function parseOctal(field: Buffer): number | undefined {
  if (field.length > 0 && ((field[0] as number) & 0x80) !== 0) {
    let v = 0n;
    for (let i = 1; i < field.length; i++) v = (v << 8n) | BigInt(field[i] as number);
    if (((field[0] as number) & 0x40) !== 0) return undefined; // negative
    v |= BigInt((field[0] as number) & 0x3f) << BigInt(8 * (field.length - 1));
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(v);
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^ +/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  return parseInt(text, 8);
}

function cString(field: Buffer): string {
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
}

/**
 * Reads a tar archive strictly: every header's checksum must hold, every member must be a regular
 * file whose body is all there. Reading stops at the first zero block (what follows it is ignored,
 * as Go's and node's readers do).
 */
export function parseTarStrict(tar: Buffer): TarParse {
  const members: TarMember[] = [];
  let at = 0;
  while (at + BLOCK <= tar.length) {
    const header = tar.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) return { ok: true, members };
    const declared = parseOctal(header.subarray(148, 156));
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
    if (declared !== sum) return { ok: false, why: `tar header at byte ${at}: checksum ${declared} != ${sum}` };
    const type = String.fromCharCode(header[156] as number);
    const size = parseOctal(header.subarray(124, 136));
    if (size === undefined) return { ok: false, why: `tar header at byte ${at}: unreadable size` };
    const magic = header.subarray(257, 263).toString('latin1');
    const prefix = magic.startsWith('ustar') ? cString(header.subarray(345, 500)) : '';
    const name = (prefix ? `${prefix}/` : '') + cString(header.subarray(0, 100));
    if (type !== '0' && type !== '\0') return { ok: false, why: `tar member ${JSON.stringify(name)} has type ${JSON.stringify(type)}, not a regular file` };
    const start = at + BLOCK;
    if (start + size > tar.length) return { ok: false, why: `tar member ${JSON.stringify(name)} declares ${size} bytes, ${tar.length - start} follow` };
    members.push({ name, type, body: tar.subarray(start, start + size) });
    at = start + Math.ceil(size / BLOCK) * BLOCK;
  }
  // Ending exactly at a block boundary after a member is what Go reads as a clean end.
  if (at === tar.length) return { ok: true, members };
  return { ok: false, why: `tar ends ${tar.length - at} bytes into a header block` };
}

/** Consul snapshot members as a fresh tar.gz (SHA256SUMS recomputed when `resum`). */
export function packSnapshot(members: TarMember[], resum: boolean): Buffer {
  let list = members;
  if (resum) {
    const sums = members
      .filter((m) => m.name !== 'SHA256SUMS')
      .map((m) => `${createHash('sha256').update(m.body).digest('hex')}  ${m.name}\n`)
      .join('');
    list = members.map((m) => (m.name === 'SHA256SUMS' ? { ...m, body: Buffer.from(sums) } : m));
  }
  return gzipSync(tarArchive(list.map((m) => tarEntry({ name: m.name, body: m.body }))));
}

export function snapshotMembers(snap: Buffer): TarMember[] {
  const parsed = parseTarStrict(gunzipSync(snap));
  if (!parsed.ok) throw new Error(`seed Consul snapshot: ${parsed.why}`);
  return parsed.members.map((m) => ({ ...m, body: Buffer.from(m.body) }));
}


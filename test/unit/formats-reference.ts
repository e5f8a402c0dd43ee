import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { Decoder, ExtensionCodec } from '@msgpack/msgpack';

/**
 * Reference decoders for the property tests: each format's rules written plainly, whole-buffer and
 * synchronous, sharing no code with the streaming readers. A reader may refuse more than these (it
 * must then say so with a KvdrError), but whatever a reader accepts, its reference must accept and
 * decode to the same records. Each throws (anything) to refuse.
 */

export interface RefRecord {
  key: Buffer;
  value: Buffer;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Canonical standard base64: exactly what Node re-encodes the decoded bytes to. */
function base64(text: unknown): Buffer {
  if (typeof text !== 'string') throw new Error('not a string');
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw new Error(`not canonical base64: ${text.slice(0, 20)}`);
  return bytes;
}

function count(n: unknown): void {
  if (n !== undefined && !(typeof n === 'number' && Number.isInteger(n) && n >= 0)) throw new Error('not a count');
}

function wellFormed(text: string): string {
  if (Buffer.from(text, 'utf8').toString('utf8') !== text) throw new Error('lone surrogate');
  return text;
}

function inflated(bytes: Buffer, gzip: boolean): Buffer {
  return gzip ? gunzipSync(bytes) : bytes;
}

function jsonArray(bytes: Buffer, nullIsEmpty: boolean): Record<string, unknown>[] {
  const value = JSON.parse(utf8.decode(bytes)) as unknown;
  if (value === null && nullIsEmpty) return [];
  if (!Array.isArray(value)) throw new Error('not an array');
  for (const element of value) if (typeof element !== 'object' || element === null || Array.isArray(element)) throw new Error('not an object');
  return value as Record<string, unknown>[];
}

export function referencePxDump(bytes: Buffer, gzip: boolean): RefRecord[] {
  return jsonArray(inflated(bytes, gzip), true).map((pair) => {
    if (typeof pair['Key'] !== 'string') throw new Error('Key');
    for (const field of ['KVDBIndex', 'CreatedIndex', 'ModifiedIndex']) count(pair[field]);
    const value = pair['Value'] === null || pair['Value'] === undefined ? Buffer.alloc(0) : base64(pair['Value']);
    return { key: Buffer.from(wellFormed(pair['Key']), 'utf8'), value };
  });
}

export function referenceConsulExport(bytes: Buffer, gzip: boolean): RefRecord[] {
  return jsonArray(inflated(bytes, gzip), false).map((entry) => {
    if (typeof entry['key'] !== 'string') throw new Error('key');
    count(entry['flags']);
    const value = entry['value'] === null || entry['value'] === undefined ? Buffer.alloc(0) : base64(entry['value']);
    return { key: Buffer.from(wellFormed(entry['key']), 'utf8'), value };
  });
}

/** The record digest as specified: sha256 over u32be(len key) key u32be(len value) value, keys ascending. */
function digestOf(records: RefRecord[]): string {
  const hash = createHash('sha256');
  const length = Buffer.alloc(4);
  for (const [i, r] of records.entries()) {
    if (i > 0 && Buffer.compare((records[i - 1] as RefRecord).key, r.key) >= 0) throw new Error('order');
    length.writeUInt32BE(r.key.length);
    hash.update(length).update(r.key);
    length.writeUInt32BE(r.value.length);
    hash.update(length).update(r.value);
  }
  return hash.digest('hex');
}

export function referenceKvdrExport(bytes: Buffer, gzip: boolean): RefRecord[] {
  const text = utf8.decode(inflated(bytes, gzip));
  if (!text.endsWith('\n')) throw new Error('no final newline');
  const lines = text.slice(0, -1).split('\n');
  const objects = lines.map((line) => {
    const value = JSON.parse(line) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  });
  const [header, ...rest] = objects;
  const trailer = rest.pop();
  if (!header || !trailer || header['format'] !== 'kvdr-export' || (header['version'] !== 1 && header['version'] !== 2)) throw new Error('header');
  const prefix = base64(header['prefix']);
  count(header['revision']);
  if (typeof header['revision'] !== 'number') throw new Error('revision');
  const records = rest.map((line) => {
    if ('trailer' in line) throw new Error('trailer before the end');
    const key = base64(line['key']);
    const value = base64(line['value']);
    if (line['lease'] !== undefined && (typeof line['lease'] !== 'string' || !/^-?\d{1,20}$/.test(line['lease']))) throw new Error('lease');
    for (const field of ['createRevision', 'modRevision', 'version']) count(line[field]);
    if (!key.subarray(0, prefix.length).equals(prefix)) throw new Error('outside the prefix');
    return { key, value };
  });
  const t = trailer['trailer'] as Record<string, unknown> | undefined;
  if (typeof t !== 'object' || t === null || typeof t['count'] !== 'number' || typeof t['digest'] !== 'string') throw new Error('trailer');
  count(t['count']);
  const headerSha = createHash('sha256').update(lines[0] as string, 'utf8').digest('hex');
  if (t['headerSha256'] === undefined ? header['version'] === 2 : t['headerSha256'] !== headerSha) throw new Error('header sha');
  if (t['count'] !== records.length || t['digest'] !== digestOf(records)) throw new Error('count or digest');
  return records;
}

/** A tar's regular members, by the ustar layout (name at 0, size octal at 124, type at 156, prefix at 345). */
function untar(tar: Buffer): Map<string, Buffer> {
  const members = new Map<string, Buffer>();
  for (let at = 0; at + 512 <= tar.length; ) {
    const block = tar.subarray(at, at + 512);
    if (block.every((b) => b === 0)) break;
    const field = (from: number, length: number): string => block.subarray(from, from + length).toString('latin1').replace(/\0.*$/s, '');
    const ustar = field(257, 6).startsWith('ustar');
    const name = (ustar && field(345, 155) ? `${field(345, 155)}/` : '') + field(0, 100);
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1) || '0';
    if (!Number.isSafeInteger(size) || at + 512 + size > tar.length) throw new Error('member cut short');
    if (type !== '0' || members.has(name) || !['meta.json', 'state.bin', 'SHA256SUMS'].includes(name)) throw new Error(`member ${name}`);
    members.set(name, tar.subarray(at + 512, at + 512 + size));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return members;
}

const rawExtensions = new ExtensionCodec();
rawExtensions.register({ type: -1, encode: () => null, decode: (data: Uint8Array) => data });

export function referenceConsulSnapshot(bytes: Buffer): RefRecord[] {
  const members = untar(gunzipSync(bytes));
  const meta = members.get('meta.json');
  const state = members.get('state.bin');
  const sums = members.get('SHA256SUMS');
  if (!meta || !state || !sums) throw new Error('members');
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  const listed = sums.toString('latin1');
  const expected = [`${sha(state)}  state.bin\n${sha(meta)}  meta.json\n`, `${sha(meta)}  meta.json\n${sha(state)}  state.bin\n`];
  if (!expected.includes(listed)) throw new Error('SHA256SUMS');
  if ((JSON.parse(utf8.decode(meta)) as { Version?: unknown }).Version !== 1) throw new Error('version');
  // Lenient on the records the readers skip: any map key, any extension.
  const decoder = new Decoder({ rawStrings: true, extensionCodec: rawExtensions, mapKeyConverter: (key: unknown) => String(key) });
  const values = [...decoder.decodeMulti(state)];
  const [header, ...rest] = values;
  if (typeof header !== 'object' || header === null || Array.isArray(header) || header instanceof Uint8Array) throw new Error('header');
  if (rest.length === 0 || rest.length % 2 !== 0) throw new Error('records');
  const out: RefRecord[] = [];
  for (let i = 0; i < rest.length; i += 2) {
    const type = rest[i];
    if (typeof type !== 'number' || !Number.isInteger(type) || type < 0 || type > 0x7f) throw new Error('type');
    if (type !== 2) continue;
    const entry = rest[i + 1] as Record<string, unknown>;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry) || entry instanceof Uint8Array) throw new Error('entry');
    const bytesOf = (v: unknown): Buffer => (v === null || v === undefined ? Buffer.alloc(0) : typeof v === 'string' ? Buffer.from(v) : v instanceof Uint8Array ? Buffer.from(v) : (() => { throw new Error('field'); })());
    if (entry['Key'] === undefined || entry['Key'] === null) throw new Error('Key');
    for (const field of ['Flags', 'CreateIndex', 'ModifyIndex']) {
      const n = entry[field];
      if (n !== undefined && n !== null && !((typeof n === 'number' && Number.isInteger(n) && n >= 0) || (typeof n === 'bigint' && n >= 0n))) throw new Error(field);
    }
    out.push({ key: bytesOf(entry['Key']), value: bytesOf(entry['Value']) });
  }
  return out;
}

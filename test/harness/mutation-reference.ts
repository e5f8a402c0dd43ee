import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { Format, Pair } from './fuzz-types.js';
import { decodeAt, MsgpackError, type MsgValue } from './msgpack-walk.js';
import { parseTarStrict, type TarMember } from './tar-bytes.js';

/**
 * The fuzz test's independent reading of a (possibly mutated) artifact: is it valid, and if so which
 * pairs does it hold? kvdr may always refuse an artifact; when it accepts one, the target must then
 * hold exactly what this says. Rules:
 * - gzip: well-formed members (CRC and length checked by zlib) and nothing after the last one;
 * - PX dump and `consul kv export`: strict UTF-8 and JSON, decoded with Go's encoding/json semantics
 *   (what Portworx and `consul kv import` do): field names matched case-insensitively, unknown fields
 *   ignored, a missing or null field is its zero value, a field of the wrong JSON type is an error,
 *   base64 as Go's StdEncoding (padding required; unused bits not checked);
 * - checksummed formats (kvdr export, etcd snapshot with its sha256 trailer): valid only if the
 *   inflated bytes equal the seed's — any content change must be refused;
 * - Consul snapshot: strict tar of exactly meta.json, state.bin, SHA256SUMS whose sums hold; then
 *   state.bin read as Consul does (header, then type byte + msgpack value pairs; KVS entries are
 *   type 2, other types skipped);
 * - and for every format (DESIGN.md, restore invariant 5): a key restored twice, a key climbing out of
 *   the scope, or a value larger than the target holds makes the artifact invalid for that restore.
 */

export type Decoded = { valid: true; pairs: Pair[] } | { valid: false; why: string };

export interface ReferenceSeeds {
  /** Plain bytes of checksummed seeds, and what they hold. */
  checksummed: Partial<Record<'kvdr-export' | 'etcd-snapshot', { plain: Buffer; pairs: Pair[] }>>;
  consulSnapshot?: { members: TarMember[]; pairs: Pair[] };
}

const invalid = (why: string): Decoded => ({ valid: false, why });
const MAX_INFLATE = 512 * 1024 * 1024;

export function inflateStrict(bytes: Buffer): { ok: true; plain: Buffer; gzip: boolean } | { ok: false; why: string } {
  if (!(bytes[0] === 0x1f && bytes[1] === 0x8b)) return { ok: true, plain: bytes, gzip: false };
  try {
    const { buffer, engine } = gunzipSync(bytes, { info: true, maxOutputLength: MAX_INFLATE }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    if (engine.bytesWritten !== bytes.length) return { ok: false, why: `${bytes.length - engine.bytesWritten} bytes after the gzip stream` };
    return { ok: true, plain: buffer, gzip: true };
  } catch (err) {
    return { ok: false, why: `gzip: ${(err as Error).message}` };
  }
}

export function referenceDecode(format: Format, bytes: Buffer, seeds: ReferenceSeeds): Decoded {
  if (format === 'consul-snapshot' && !(bytes[0] === 0x1f && bytes[1] === 0x8b)) return invalid('a Consul snapshot is gzip');
  const inflated = inflateStrict(bytes);
  if (!inflated.ok) return invalid(inflated.why);
  const plain = inflated.plain;
  switch (format) {
    case 'px-dump':
    case 'consul-export':
      return decodeJsonFormat(format, plain);
    case 'kvdr-export':
    case 'etcd-snapshot': {
      const seed = seeds.checksummed[format];
      if (!seed) throw new Error(`no seed for ${format}`);
      return plain.equals(seed.plain) ? { valid: true, pairs: seed.pairs } : invalid('checksummed content changed');
    }
    case 'consul-snapshot':
      return decodeConsulSnapshot(plain, seeds);
  }
}

/** Go's encoding/json field lookup: the exact name, else a case-insensitive match. */
function goField(object: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(object, name)) return object[name];
  const folded = Object.keys(object).find((k) => k.toLowerCase() === name.toLowerCase());
  return folded === undefined ? undefined : object[folded];
}

/** base64.StdEncoding.DecodeString: padded, standard alphabet (unused low bits are not checked). */
function goBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

const isUint = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'number' && Number.isInteger(v) && v >= 0);
const isInt = (v: unknown): boolean => v === undefined || v === null || (typeof v === 'number' && Number.isInteger(v));
const isStringish = (v: unknown): boolean => v === undefined || v === null || typeof v === 'string';

function decodeJsonFormat(format: 'px-dump' | 'consul-export', plain: Buffer): Decoded {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(plain);
  } catch {
    return invalid('not UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return invalid(`JSON: ${(err as Error).message.slice(0, 120)}`);
  }
  if (!Array.isArray(parsed)) return invalid('not a JSON array');
  const pairs: Pair[] = [];
  for (const [i, element] of parsed.entries()) {
    if (element === null || typeof element !== 'object' || Array.isArray(element)) return invalid(`element ${i} is not an object`);
    const entry = element as Record<string, unknown>;
    if (format === 'px-dump') {
      const key = goField(entry, 'Key');
      const value = goField(entry, 'Value');
      if (!isStringish(key) || !isStringish(value)) return invalid(`element ${i}: Key or Value is not a string`);
      if (!isInt(goField(entry, 'Action')) || !isInt(goField(entry, 'TTL'))) return invalid(`element ${i}: Action or TTL is not an integer`);
      for (const f of ['KVDBIndex', 'CreatedIndex', 'ModifiedIndex']) if (!isUint(goField(entry, f))) return invalid(`element ${i}: ${f} is not a uint64`);
      const bytes = typeof value === 'string' ? goBase64(value) : Buffer.alloc(0);
      if (!bytes) return invalid(`element ${i}: Value is not base64`);
      pairs.push({ key: Buffer.from(typeof key === 'string' ? key : '', 'utf8'), value: bytes, flags: 0 });
    } else {
      const key = goField(entry, 'key');
      const value = goField(entry, 'value');
      const flags = goField(entry, 'flags');
      if (!isStringish(key) || !isStringish(value) || !isStringish(goField(entry, 'namespace')) || !isStringish(goField(entry, 'partition'))) {
        return invalid(`element ${i}: a string field is not a string`);
      }
      if (!isUint(flags)) return invalid(`element ${i}: flags is not a uint64`);
      const bytes = goBase64(typeof value === 'string' ? value : '');
      if (!bytes) return invalid(`element ${i}: value is not base64`);
      pairs.push({ key: Buffer.from(typeof key === 'string' ? key : '', 'utf8'), value: bytes, flags: typeof flags === 'number' ? flags : 0 });
    }
  }
  return { valid: true, pairs };
}

const SNAPSHOT_MEMBERS = ['meta.json', 'state.bin', 'SHA256SUMS'];

function decodeConsulSnapshot(tar: Buffer, seeds: ReferenceSeeds): Decoded {
  const parsed = parseTarStrict(tar);
  if (!parsed.ok) return invalid(parsed.why);
  const names = parsed.members.map((m) => m.name);
  if (names.length !== 3 || !SNAPSHOT_MEMBERS.every((n) => names.includes(n))) return invalid(`archive members ${JSON.stringify(names)}`);
  const member = (name: string): Buffer => (parsed.members.find((m) => m.name === name) as TarMember).body;
  const sums = new Map<string, string>();
  for (const line of member('SHA256SUMS').toString('latin1').split('\n')) {
    if (line === '') continue;
    const match = /^([0-9a-fA-F]{64}) {2}(.+)$/.exec(line);
    if (!match || sums.has(match[2] as string)) return invalid(`SHA256SUMS line ${JSON.stringify(line.slice(0, 80))}`);
    sums.set(match[2] as string, (match[1] as string).toLowerCase());
  }
  if (sums.size !== 2) return invalid('SHA256SUMS does not list exactly meta.json and state.bin');
  for (const name of ['meta.json', 'state.bin']) {
    if (sums.get(name) !== createHash('sha256').update(member(name)).digest('hex')) return invalid(`SHA256SUMS mismatch for ${name}`);
  }
  const seed = seeds.consulSnapshot;
  if (seed && SNAPSHOT_MEMBERS.every((n) => seed.members.find((m) => m.name === n)?.body.equals(member(n)))) {
    return { valid: true, pairs: seed.pairs };
  }
  let meta: unknown;
  try {
    meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(member('meta.json')));
  } catch {
    return invalid('meta.json is not JSON');
  }
  if (meta === null || typeof meta !== 'object' || (meta as { Version?: unknown }).Version !== 1) return invalid('meta.json: Version is not 1');
  return decodeStateBin(member('state.bin'));
}

/** state.bin as Consul's FSM restores it: msgpack header, then (type byte, msgpack value) until the end. */
export function decodeStateBin(state: Buffer): Decoded {
  try {
    const header = decodeAt(state, 0);
    if (!(header.value instanceof Map)) return invalid('state.bin header is not a map');
    const pairs: Pair[] = [];
    let at = header.end;
    while (at < state.length) {
      const type = state[at] as number;
      const item = decodeAt(state, at + 1);
      at = item.end;
      if (type !== 2) continue;
      const entry = item.value;
      if (!(entry instanceof Map)) return invalid(`KVS record before byte ${at} is not a map`);
      const key = entry.get('Key');
      const value = entry.get('Value');
      const flags = entry.get('Flags');
      const bytesOrNothing = (v: MsgValue | undefined): boolean => v === undefined || v === null || Buffer.isBuffer(v);
      if (!bytesOrNothing(key) || !bytesOrNothing(value)) return invalid(`KVS record before byte ${at}: Key or Value is not a string`);
      const isUint64 = flags === undefined || flags === null || (typeof flags === 'number' && Number.isInteger(flags) && flags >= 0) || typeof flags === 'bigint';
      if (!isUint64) return invalid(`KVS record before byte ${at}: Flags is not a uint64`);
      pairs.push({
        key: Buffer.isBuffer(key) ? Buffer.from(key) : Buffer.alloc(0),
        value: Buffer.isBuffer(value) ? Buffer.from(value) : Buffer.alloc(0),
        flags: flags === undefined || flags === null ? 0 : Number(flags),
      });
    }
    return { valid: true, pairs };
  } catch (err) {
    if (err instanceof MsgpackError) return invalid(`state.bin: ${err.message}`);
    throw err;
  }
}

export interface ScopeMapping {
  /** PX dump keys are relative to the scope; other artifacts' keys are whole. */
  relative: boolean;
  /** Whole keys under this prefix are restored (`--prefix`); others skipped. */
  from: Buffer;
  /** Where restored keys land (`pwx/<cluster>/`, or `--to-prefix`). */
  scope: Buffer;
  maxValueBytes: number;
}

/** What the scope must hold after a successful restore of these pairs: key hex → pair. */
export function expectedScope(pairs: Pair[], mapping: ScopeMapping): { valid: true; pairs: Map<string, Pair> } | { valid: false; why: string } {
  const out = new Map<string, Pair>();
  for (const pair of pairs) {
    let rest: Buffer;
    if (mapping.relative) rest = pair.key;
    else if (pair.key.length >= mapping.from.length && pair.key.subarray(0, mapping.from.length).equals(mapping.from)) rest = pair.key.subarray(mapping.from.length);
    else continue;
    let depth = 0;
    for (const segment of rest.toString('latin1').split('/')) {
      if (segment === '..') depth--;
      else if (segment !== '.' && segment !== '') depth++;
      if (depth < 0) return { valid: false, why: `key ${JSON.stringify(pair.key.toString('utf8'))} climbs out of the scope` };
    }
    if (pair.value.length > mapping.maxValueBytes) return { valid: false, why: `a ${pair.value.length}-byte value exceeds the target's limit` };
    const key = Buffer.concat([mapping.scope, rest]);
    if (out.has(key.toString('hex'))) return { valid: false, why: `duplicate key ${JSON.stringify(pair.key.toString('utf8'))}` };
    out.set(key.toString('hex'), { key, value: pair.value, flags: pair.flags });
  }
  return { valid: true, pairs: out };
}

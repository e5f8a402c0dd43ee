import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { readJsonArray } from './json-array-reader.js';
import type { ReaderLimits } from './limits.js';
import { decodeBase64Strict, hasLoneSurrogate } from './text.js';
import type { KvRecord } from './record.js';

/** One KVPair of a Portworx KVDB dump (Go's json.Marshal of []*kvdb.KVPair). */
export interface PxDumpRecord extends KvRecord {
  /** The key relative to the cluster domain `pwx/<clusterid>/`. */
  key: Buffer;
  kvdbIndex: number;
}

/**
 * Reads a PX dump as it streams: `[{"Key","Value"(base64|null),"Action","TTL","KVDBIndex",…},…]`.
 * Keys are relative to `pwx/<clusterid>/`; `""` is a valid key (Portworx's kvdb library dumps the
 * domain key itself that way) and a null Value is an empty value; a file that is just `null` (Go's
 * json.Marshal of a nil slice) is an empty dump. A missing or non-string Key, a Value
 * that is not strict base64, an index that is not a number: damaged (exit 4). Errors name the element
 * and its byte offset.
 */
export async function* readPxDump(input: Readable, label: string, limits: ReaderLimits = {}): AsyncIterable<PxDumpRecord> {
  for await (const { value, index, offset } of readJsonArray(input, label, { ...limits, nullIsEmpty: true })) {
    const pair = value as { Key?: unknown; Value?: unknown; KVDBIndex?: unknown; ModifiedIndex?: unknown; CreatedIndex?: unknown };
    const where = `${label}: element ${index} at byte ${offset}`;
    if (typeof pair.Key !== 'string') {
      throw new IntegrityError(`${where} has no Key string; this is not a Portworx KVDB dump, or it is damaged`);
    }
    const name = JSON.stringify(pair.Key.length > 80 ? `${pair.Key.slice(0, 77)}...` : pair.Key);
    if (hasLoneSurrogate(pair.Key)) throw new IntegrityError(`${where} has a Key with an unpaired UTF-16 surrogate escape, which no dump writer produces; the dump is damaged`);
    if (pair.Value !== null && pair.Value !== undefined && typeof pair.Value !== 'string') {
      throw new IntegrityError(`${where} (${name}) has a Value that is not base64 text; the dump is damaged`);
    }
    const bytes = typeof pair.Value === 'string' ? decodeBase64Strict(pair.Value) : Buffer.alloc(0);
    if (!bytes) throw new IntegrityError(`${where} (${name}) has a Value that is not valid base64; the dump is damaged`);
    for (const field of ['KVDBIndex', 'CreatedIndex', 'ModifiedIndex'] as const) {
      const n = pair[field];
      if (n !== undefined && (typeof n !== 'number' || !Number.isInteger(n) || n < 0)) {
        throw new IntegrityError(`${where} (${name}) has a ${field} that is not a non-negative integer; the dump is damaged`);
      }
    }
    yield {
      key: Buffer.from(pair.Key, 'utf8'),
      value: bytes,
      kvdbIndex: typeof pair.KVDBIndex === 'number' ? pair.KVDBIndex : 0,
      ...(typeof pair.CreatedIndex === 'number' ? { createRevision: pair.CreatedIndex } : {}),
      ...(typeof pair.ModifiedIndex === 'number' ? { modRevision: pair.ModifiedIndex } : {}),
    };
  }
}

/** `pwx_kvdb_2018-05-25T22:59:08Z.dump` → its time, or undefined for another name. */
export function pxDumpTime(fileName: string): Date | undefined {
  const match = /pwx_kvdb_(.+)\.dump$/.exec(fileName);
  if (!match) return undefined;
  const time = new Date(match[1] as string);
  return Number.isNaN(time.getTime()) ? undefined : time;
}

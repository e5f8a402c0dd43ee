import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { readJsonArray } from './json-array-reader.js';
import type { KvRecord } from './record.js';

/** One KVPair of a Portworx KVDB dump (Go's json.Marshal of []*kvdb.KVPair). */
export interface PxDumpRecord extends KvRecord {
  /** The key relative to the cluster domain `pwx/<clusterid>/`. */
  key: Buffer;
  kvdbIndex: number;
}

/**
 * Reads a PX dump as it streams: `[{"Key","Value"(base64|null),"Action","TTL","KVDBIndex",…},…]`.
 * Keys are relative to `pwx/<clusterid>/`; a null Value is an empty value. Errors name the byte offset.
 */
export async function* readPxDump(input: Readable, label: string): AsyncIterable<PxDumpRecord> {
  for await (const { value, index, offset } of readJsonArray(input, label)) {
    const pair = value as { Key?: unknown; Value?: unknown; KVDBIndex?: unknown; ModifiedIndex?: unknown; CreatedIndex?: unknown };
    if (typeof pair.Key !== 'string' || pair.Key === '') {
      throw new IntegrityError(`${label}: element ${index} at byte ${offset} has no Key; this is not a Portworx KVDB dump`);
    }
    if (pair.Value !== null && pair.Value !== undefined && typeof pair.Value !== 'string') {
      throw new IntegrityError(`${label}: element ${index} at byte ${offset} (${pair.Key}) has a Value that is not base64 text`);
    }
    const text = typeof pair.Value === 'string' ? pair.Value : '';
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) {
      throw new IntegrityError(`${label}: element ${index} at byte ${offset} (${pair.Key}) has a Value that is not valid base64`);
    }
    yield {
      key: Buffer.from(pair.Key, 'utf8'),
      value: Buffer.from(text, 'base64'),
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

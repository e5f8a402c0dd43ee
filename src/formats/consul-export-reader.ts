import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { readJsonArray } from './json-array-reader.js';
import type { ReaderLimits } from './limits.js';
import type { KvRecord } from './record.js';
import { decodeBase64Strict, hasLoneSurrogate } from './text.js';

/**
 * Reads `consul kv export` JSON (`[{key, flags, value(base64)}]`) as it streams. A null or missing
 * value is an empty value; a key that is not a string, flags that are not a non-negative integer, a
 * value that is not strict base64: damaged (exit 4), naming the element and its byte offset.
 */
export async function* readConsulExport(input: Readable, label: string, limits: ReaderLimits = {}): AsyncIterable<KvRecord> {
  for await (const { value, index, offset } of readJsonArray(input, label, limits)) {
    const entry = value as { key?: unknown; flags?: unknown; value?: unknown };
    const where = `${label}: element ${index} at byte ${offset}`;
    if (typeof entry.key !== 'string' || (entry.value !== undefined && entry.value !== null && typeof entry.value !== 'string')) {
      throw new IntegrityError(`${where} is not a consul kv export entry ({key, flags, value}); the file is damaged or not a consul kv export`);
    }
    if (hasLoneSurrogate(entry.key)) throw new IntegrityError(`${where} has a key with an unpaired UTF-16 surrogate escape, which Consul never writes; the export is damaged`);
    if (entry.flags !== undefined && (typeof entry.flags !== 'number' || !Number.isInteger(entry.flags) || entry.flags < 0)) {
      throw new IntegrityError(`${where} has flags that are not a non-negative integer; the export is damaged`);
    }
    const bytes = typeof entry.value === 'string' ? decodeBase64Strict(entry.value) : Buffer.alloc(0);
    if (!bytes) throw new IntegrityError(`${where} (${JSON.stringify(entry.key.slice(0, 80))}) has a value that is not valid base64; the export is damaged`);
    yield { key: Buffer.from(entry.key, 'utf8'), value: bytes, flags: typeof entry.flags === 'number' ? entry.flags : 0 };
  }
}

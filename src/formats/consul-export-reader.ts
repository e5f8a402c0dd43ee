import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { readJsonArray } from './json-array-reader.js';
import type { KvRecord } from './record.js';

/** Reads `consul kv export` JSON (`[{key, flags, value(base64)}]`) as it streams. */
export async function* readConsulExport(input: Readable, label: string): AsyncIterable<KvRecord> {
  for await (const { value, index, offset } of readJsonArray(input, label)) {
    const entry = value as { key?: unknown; flags?: unknown; value?: unknown };
    if (typeof entry.key !== 'string' || (entry.value !== undefined && entry.value !== null && typeof entry.value !== 'string')) {
      throw new IntegrityError(`${label}: element ${index} at byte ${offset} is not a consul kv export entry ({key, flags, value})`);
    }
    yield {
      key: Buffer.from(entry.key, 'utf8'),
      value: Buffer.from(typeof entry.value === 'string' ? entry.value : '', 'base64'),
      flags: typeof entry.flags === 'number' ? entry.flags : 0,
    };
  }
}

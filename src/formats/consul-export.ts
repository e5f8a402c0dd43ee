import { isUtf8 } from 'node:buffer';
import { Transform, type TransformCallback } from 'node:stream';
import { KvdrError } from '../util/errors.js';
import { RecordDigest } from './record-digest.js';
import type { KvRecord } from './record.js';

/** One entry of `consul kv export` / `consul kv import` JSON. */
export interface ConsulExportEntry {
  key: string;
  flags: number;
  /** Standard base64; empty for an empty or null value. */
  value: string;
}

export interface ConsulExportWriter extends Transform {
  summary(): { count: number; digest: string | undefined };
}

/**
 * Encodes records as the JSON array `consul kv export` writes (tab-indented, `{key, flags, value}`),
 * so `consul kv import` takes the file as is. Object-mode in, bytes out, one entry at a time. Consul
 * keys are text: a key that is not UTF-8 fails the stream rather than being written as U+FFFD.
 */
export function consulExportWriter(): ConsulExportWriter {
  const digest = new RecordDigest();
  let final: string | undefined;
  const transform = new Transform({
    writableObjectMode: true,
    readableObjectMode: false,
    transform(record: KvRecord, _encoding, done: TransformCallback) {
      if (!isUtf8(record.key)) {
        return done(new KvdrError(`key ${record.key.subarray(0, 64).toString('hex')}${record.key.length > 64 ? '…' : ''} (hex) is not UTF-8; a consul kv export holds text keys only, export this scope as a snapshot instead`));
      }
      const first = digest.records === 0;
      digest.add(record.key, record.value);
      const entry =
        `\t{\n\t\t"key": ${JSON.stringify(record.key.toString('utf8'))},\n\t\t"flags": ${record.flags ?? 0},\n` +
        `\t\t"value": "${record.value.toString('base64')}"\n\t}`;
      done(null, `${first ? '[\n' : ',\n'}${entry}`);
    },
    flush(done: TransformCallback) {
      final = digest.digest();
      done(null, digest.records === 0 ? '[]\n' : '\n]\n');
    },
  });
  return Object.assign(transform, { summary: () => ({ count: digest.records, digest: final }) });
}

/** An entry of Consul's `GET /v1/kv/?recurse` answer. */
export interface ConsulKvPair {
  Key: string;
  Flags?: number;
  /** base64, or null for a key without a value. */
  Value?: string | null;
  CreateIndex?: number;
  ModifyIndex?: number;
}

export function recordFromConsul(pair: ConsulKvPair): KvRecord {
  return {
    key: Buffer.from(pair.Key, 'utf8'),
    value: pair.Value ? Buffer.from(pair.Value, 'base64') : Buffer.alloc(0),
    flags: pair.Flags ?? 0,
    ...(pair.CreateIndex !== undefined ? { createRevision: pair.CreateIndex } : {}),
    ...(pair.ModifyIndex !== undefined ? { modRevision: pair.ModifyIndex } : {}),
  };
}

import { Transform, type TransformCallback } from 'node:stream';
import type { KvRecord } from './record.js';
import { RecordDigest } from './record-digest.js';

export const EXPORT_FORMAT = 'kvdr-export';
export const EXPORT_VERSION = 1;

/** First line of an export: what it is and where it came from. */
export interface ExportHeader {
  format: typeof EXPORT_FORMAT;
  version: typeof EXPORT_VERSION;
  source: { type: 'etcd'; clusterId?: string };
  /** The scope prefix, base64 (keys are bytes). */
  prefix: string;
  revision: number;
  createdAt: string;
}

/** Last line: how many records came before it and their RecordDigest, so truncation is detectable. */
export interface ExportTrailer {
  trailer: { count: number; digest: string };
}

/** One record line; key and value base64 so any bytes survive JSON. */
export interface ExportRecordLine {
  key: string;
  value: string;
  lease: string;
  createRevision: number;
  modRevision: number;
  version: number;
}

export interface ExportWriter extends Transform {
  /** Records and digest written, final once the stream has ended. */
  summary(): { count: number; digest: string | undefined };
}

/**
 * Encodes etcd records as kvdr export NDJSON: header, one line per record, trailer. Object-mode in
 * (KvRecord), bytes out; one record in memory at a time. The header is written when the first record
 * (or the end) arrives, because the revision is known only after the first page was read.
 */
export function exportWriter(header: () => ExportHeader): ExportWriter {
  const digest = new RecordDigest();
  let started = false;
  let final: string | undefined;
  const start = (stream: Transform): void => {
    if (!started) {
      started = true;
      stream.push(`${JSON.stringify(header())}\n`);
    }
  };
  const transform = new Transform({
    writableObjectMode: true,
    readableObjectMode: false,
    transform(record: KvRecord, _encoding, done: TransformCallback) {
      start(this);
      digest.add(record.key, record.value);
      const line: ExportRecordLine = {
        key: record.key.toString('base64'),
        value: record.value.toString('base64'),
        lease: record.lease ?? '0',
        createRevision: record.createRevision ?? 0,
        modRevision: record.modRevision ?? 0,
        version: record.version ?? 0,
      };
      done(null, `${JSON.stringify(line)}\n`);
    },
    flush(done: TransformCallback) {
      start(this);
      final = digest.digest();
      const trailer: ExportTrailer = { trailer: { count: digest.records, digest: final } };
      done(null, `${JSON.stringify(trailer)}\n`);
    },
  });
  return Object.assign(transform, { summary: () => ({ count: digest.records, digest: final }) });
}

import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { KvRecord } from './record.js';
import { RecordDigest } from './record-digest.js';

export const EXPORT_FORMAT = 'kvdr-export';
/**
 * The version this kvdr writes. 2: the trailer carries `headerSha256`, so the header (its prefix,
 * revision) is covered by the export itself. 1 (older backups): only the manifest's sha256 of the
 * stored object covers the header. The reader reads both.
 */
export const EXPORT_VERSION = 2;
export const READABLE_EXPORT_VERSIONS: readonly number[] = [1, 2];
export type ExportVersion = 1 | 2;

/** First line of an export: what it is and where it came from. */
export interface ExportHeader {
  format: typeof EXPORT_FORMAT;
  version: ExportVersion;
  source: { type: 'etcd'; clusterId?: string };
  /** The scope prefix, base64 (keys are bytes). */
  prefix: string;
  revision: number;
  createdAt: string;
}

/**
 * Last line: how many records came before it and their RecordDigest, so truncation is detectable, and
 * (version 2) the sha256 (hex) of the header line's exact bytes, without its newline.
 */
export interface ExportTrailer {
  trailer: { count: number; digest: string; headerSha256?: string };
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

/**
 * One {@link ExportRecordLine} as JSON. Written by hand because it is the hot path of a million-key
 * export: base64 and decimal digits need no escaping, and the lease id is digits too.
 */
export function recordLine(record: KvRecord): string {
  const lease = record.lease ?? '0';
  if (!/^\d+$/.test(lease)) throw new TypeError(`lease id must be decimal digits, got ${JSON.stringify(lease)}`);
  return (
    `{"key":"${record.key.toString('base64')}","value":"${record.value.toString('base64')}","lease":"${lease}",` +
    `"createRevision":${record.createRevision ?? 0},"modRevision":${record.modRevision ?? 0},"version":${record.version ?? 0}}`
  );
}

export interface ExportWriter extends Transform {
  /** Records and digest written, final once the stream has ended. */
  summary(): { count: number; digest: string | undefined };
}

/**
 * Encodes etcd records as kvdr export NDJSON: header, one line per record, trailer. Object-mode in
 * (a KvRecord or a page of them), bytes out; one page in memory at a time. The header is written when the first record
 * (or the end) arrives, because the revision is known only after the first page was read. The trailer
 * always carries the header line's sha256; a reader requires it for version 2 and checks it whenever present.
 */
export function exportWriter(header: () => ExportHeader): ExportWriter {
  const digest = new RecordDigest();
  let headerSha256 = '';
  let final: string | undefined;
  const start = (stream: Transform): void => {
    if (!headerSha256) {
      const line = JSON.stringify(header());
      headerSha256 = createHash('sha256').update(line, 'utf8').digest('hex');
      stream.push(`${line}\n`);
    }
  };
  const transform = new Transform({
    writableObjectMode: true,
    // A page is thousands of records: queue one, not the object-mode default of 16.
    writableHighWaterMark: 1,
    readableObjectMode: false,
    transform(input: KvRecord | KvRecord[], _encoding, done: TransformCallback) {
      start(this);
      const lines: string[] = [];
      for (const record of Array.isArray(input) ? input : [input]) {
        digest.add(record.key, record.value);
        lines.push(recordLine(record));
      }
      lines.push('');
      done(null, lines.join('\n'));
    },
    flush(done: TransformCallback) {
      start(this);
      final = digest.digest();
      const trailer: ExportTrailer = { trailer: { count: digest.records, digest: final, headerSha256 } };
      done(null, `${JSON.stringify(trailer)}\n`);
    },
  });
  return Object.assign(transform, { summary: () => ({ count: digest.records, digest: final }) });
}

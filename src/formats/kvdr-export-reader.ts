import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { EXPORT_FORMAT, EXPORT_VERSION, type ExportHeader, type ExportRecordLine, type ExportTrailer } from './kvdr-export.js';
import { RecordDigest } from './record-digest.js';
import type { KvRecord } from './record.js';

export interface KvdrExportReader {
  /** The header, read before the first record. */
  header(): Promise<ExportHeader>;
  /** The records; the iteration fails at the end if the trailer's count or digest does not match. */
  records: AsyncIterable<KvRecord>;
}

/** Reads a kvdr export (NDJSON: header, records, trailer) line by line, checking the trailer. */
export function readKvdrExport(input: Readable, label: string): KvdrExportReader {
  const lines = createInterface({ input, crlfDelay: Infinity })[Symbol.asyncIterator]();
  let lineNo = 0;
  const next = async (): Promise<string | undefined> => {
    const item = await lines.next();
    if (item.done) return undefined;
    lineNo++;
    return item.value;
  };
  const parse = (text: string): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      throw new IntegrityError(`${label}: line ${lineNo} is not valid JSON; the export is damaged`);
    }
  };
  let headerPromise: Promise<ExportHeader> | undefined;
  const header = (): Promise<ExportHeader> =>
    (headerPromise ??= (async () => {
      const first = await next();
      const value = first === undefined ? undefined : (parse(first) as Partial<ExportHeader>);
      if (value?.format !== EXPORT_FORMAT) throw new IntegrityError(`${label}: not a kvdr export (no kvdr-export header on line 1)`);
      if (value.version !== EXPORT_VERSION) throw new IntegrityError(`${label}: kvdr export version ${String(value.version)} is not supported (this kvdr reads version ${EXPORT_VERSION})`);
      return value as ExportHeader;
    })());

  async function* records(): AsyncIterable<KvRecord> {
    await header();
    const digest = new RecordDigest();
    for (;;) {
      const line = await next();
      if (line === undefined) throw new IntegrityError(`${label}: ends after line ${lineNo} without a trailer; the export is truncated`);
      const value = parse(line) as Partial<ExportRecordLine> & Partial<ExportTrailer>;
      if (value.trailer) {
        if (value.trailer.count !== digest.records || value.trailer.digest !== digest.digest()) {
          throw new IntegrityError(`${label}: trailer says ${value.trailer.count} records, the export holds ${digest.records} that do not match its digest; the export is damaged`);
        }
        if ((await next()) !== undefined) throw new IntegrityError(`${label}: data after the trailer on line ${lineNo}`);
        return;
      }
      if (typeof value.key !== 'string' || typeof value.value !== 'string') {
        throw new IntegrityError(`${label}: line ${lineNo} is not a kvdr export record`);
      }
      const record: KvRecord = {
        key: Buffer.from(value.key, 'base64'),
        value: Buffer.from(value.value, 'base64'),
        ...(value.lease !== undefined ? { lease: value.lease } : {}),
        ...(value.createRevision !== undefined ? { createRevision: value.createRevision } : {}),
        ...(value.modRevision !== undefined ? { modRevision: value.modRevision } : {}),
        ...(value.version !== undefined ? { version: value.version } : {}),
      };
      try {
        digest.add(record.key, record.value);
      } catch {
        throw new IntegrityError(`${label}: line ${lineNo} is out of key order; the export is damaged`);
      }
      yield record;
    }
  }
  return { header, records: records() };
}

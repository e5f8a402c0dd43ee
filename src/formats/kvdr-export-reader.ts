import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { EXPORT_FORMAT, READABLE_EXPORT_VERSIONS, type ExportHeader, type ExportRecordLine, type ExportTrailer } from './kvdr-export.js';
import { DEFAULT_MAX_RECORD_BYTES, type ReaderLimits } from './limits.js';
import type { Line } from './line-reader.js';
import { ndjsonLines } from './ndjson-lines.js';
import type { KvRecord } from './record.js';
import { SequenceDigest } from './set-digest.js';
import { decodeBase64Strict } from './text.js';

export interface KvdrExportReader {
  /** The header, read before the first record. Trust it once `records` has been read to its end. */
  header(): Promise<ExportHeader>;
  /**
   * Whether the export's own trailer covers the header: true for version 2 (`trailer.headerSha256`,
   * checked when `records` ends), false for version 1, whose header only the manifest's sha256 of the
   * stored object covers (a local version 1 file has no check on its header at all).
   */
  headerCovered(): Promise<boolean>;
  /**
   * The records; the iteration fails at the end if the trailer's count, digest or header sha256 does
   * not match, and on the first record line that is damaged (bad JSON, UTF-8 or base64; a key outside
   * the header's prefix or out of order; a line longer than `limits.maxRecordBytes`).
   */
  records: AsyncIterable<KvRecord>;
}

const LEASE = /^-?\d{1,20}$/;
const REVISION_FIELDS = ['createRevision', 'modRevision', 'version'] as const;

/** The first version whose trailer carries headerSha256. */
const HEADER_COVERED_FROM = 2;

/** Reads a kvdr export (NDJSON: header, records, trailer) line by line, checking the trailer. */
/** `onHeader` hears the header once it is read and checked (a caller that only iterates `records` learns the revision). */
export function readKvdrExport(input: Readable, label: string, limits: ReaderLimits = {}, onHeader?: (header: ExportHeader) => void): KvdrExportReader {
  const { next, take, parse, damaged, close, lineNumber } = ndjsonLines(input, label, limits.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES, 'export');

  let headerSha256 = '';
  let prefix: Buffer = Buffer.alloc(0);
  let headerPromise: Promise<ExportHeader> | undefined;
  const header = (): Promise<ExportHeader> =>
    (headerPromise ??= (async () => {
      const first = await next();
      if (!first) throw new IntegrityError(`${label}: is empty; not a kvdr export (no header line), the file was cut short or never written`);
      const value = (() => {
        try {
          return parse(first);
        } catch {
          return undefined;
        }
      })();
      if (value?.['format'] !== EXPORT_FORMAT) throw new IntegrityError(`${label}: not a kvdr export (no kvdr-export header on line 1)`);
      if (!READABLE_EXPORT_VERSIONS.includes(value['version'] as number)) {
        throw new IntegrityError(`${label}: kvdr export version ${String(JSON.stringify(value['version'])).slice(0, 40)} is not supported (this kvdr reads versions ${READABLE_EXPORT_VERSIONS.join(', ')}); upgrade kvdr`);
      }
      const decoded = typeof value['prefix'] === 'string' ? decodeBase64Strict(value['prefix']) : undefined;
      if (!decoded) throw damaged('(the header) has a prefix that is not base64');
      if (!isCount(value['revision'])) throw damaged('(the header) has a revision that is not a non-negative integer');
      prefix = decoded;
      headerSha256 = createHash('sha256').update(first.bytes).digest('hex');
      onHeader?.(value as unknown as ExportHeader);
      return value as unknown as ExportHeader;
    })());

  async function* records(): AsyncIterable<KvRecord> {
    try {
      const { version } = await header();
      // The trailer's digest (RecordDigest's) is SequenceDigest's over keys in order; SequenceDigest
      // stages pairs and hashes 64 KiB at a time, where RecordDigest makes four calls per pair.
      const digest = new SequenceDigest();
      let previous: Buffer | undefined;
      const inOrder = (key: Buffer): boolean => {
        const ok = previous === undefined || Buffer.compare(previous, key) < 0;
        previous = key; // a fresh buffer from the base64 decoder, never reused
        return ok;
      };
      for (;;) {
        const line = take() ?? (await next());
        if (line === undefined) throw new IntegrityError(`${label}: ends after line ${lineNumber()} without a trailer; the export is truncated`);
        const value = parse(line);
        if ('trailer' in value) {
          checkTrailer(value as unknown as ExportTrailer, version, digest, line);
          if ((await next()) !== undefined) throw damaged('follows the trailer (data after the end of the export)');
          return;
        }
        yield toRecord(value, digest, inOrder);
      }
    } finally {
      await close(); // a pass given up early still closes the input
    }
  }

  function checkTrailer({ trailer }: ExportTrailer, version: number, digest: SequenceDigest, line: Line): void {
    if (typeof trailer !== 'object' || trailer === null || !isCount(trailer.count) || typeof trailer.digest !== 'string') throw damaged('is not a valid trailer');
    if (!line.terminated) throw new IntegrityError(`${label}: the trailer on line ${lineNumber()} lacks its final newline; the export is truncated`);
    // Version 2 must carry it; a version 1 file that does (written by this kvdr) is checked as well.
    if (trailer.headerSha256 === undefined ? version >= HEADER_COVERED_FROM : trailer.headerSha256 !== headerSha256) {
      throw new IntegrityError(`${label}: the header on line 1 does not match the trailer's headerSha256; the header (its prefix or revision) was altered or damaged`);
    }
    if (trailer.count !== digest.count) {
      throw new IntegrityError(`${label}: the trailer says ${trailer.count} records, the export holds ${digest.count}; the export is damaged`);
    }
    if (trailer.digest !== digest.digest()) throw new IntegrityError(`${label}: the ${digest.count} records do not match the trailer's digest; the export is damaged`);
  }

  function toRecord(value: Partial<Record<keyof ExportRecordLine, unknown>>, digest: SequenceDigest, inOrder: (key: Buffer) => boolean): KvRecord {
    const key = typeof value.key === 'string' ? decodeBase64Strict(value.key) : undefined;
    const data = typeof value.value === 'string' ? decodeBase64Strict(value.value) : undefined;
    if (!key || !data) {
      throw damaged(typeof value.key === 'string' && typeof value.value === 'string' ? 'has a key or value that is not valid base64' : 'is not a kvdr export record');
    }
    if (value.lease !== undefined && (typeof value.lease !== 'string' || !LEASE.test(value.lease))) throw damaged('has a lease that is not a decimal id');
    for (const field of REVISION_FIELDS) {
      if (value[field] !== undefined && !isCount(value[field])) throw damaged(`has a ${field} that is not a non-negative integer`);
    }
    if (key.length < prefix.length || prefix.compare(key, 0, prefix.length) !== 0) throw damaged("has a key outside the header's prefix");
    if (!inOrder(key)) throw damaged('is out of key order (or repeats a key)');
    digest.add(key, data);
    // Fields set one by one, not spread from temporary objects: this runs once per record.
    const record: KvRecord = { key, value: data };
    if (value.lease !== undefined) record.lease = value.lease;
    if (value.createRevision !== undefined) record.createRevision = value.createRevision as number;
    if (value.modRevision !== undefined) record.modRevision = value.modRevision as number;
    if (value.version !== undefined) record.version = value.version as number;
    return record;
  }

  return { header, headerCovered: async () => (await header()).version >= HEADER_COVERED_FROM, records: records() };
}

function isCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0;
}

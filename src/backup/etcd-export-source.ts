import { Readable, pipeline } from 'node:stream';
import type { SourceConfig } from '../config/schema.js';
import { EXPORT_FORMAT, EXPORT_VERSION, exportWriter } from '../formats/kvdr-export.js';
import { connectEtcd } from '../sources/etcd/connect.js';
import { describeEtcdError } from '../sources/etcd/errors.js';
import { readRange } from '../sources/etcd/range-reader.js';
import type { ArtifactSource } from './artifact-source.js';

export interface EtcdExportOptions {
  /** Read at this revision (a continuous job's new base, at the revision its change log reached). @defaultValue the newest */
  revision?: number;
}

/** A revision-consistent export of the scope, in the kvdr export format (NDJSON). */
export async function openEtcdExport(source: SourceConfig, scope: string, options: EtcdExportOptions = {}): Promise<ArtifactSource> {
  const etcd = connectEtcd(source);
  const describeError = (err: unknown): Error => describeEtcdError(err, source.endpoints, `export ${scope || 'the keyspace'}`);
  try {
    // One cheap read of the scope up front, so that a bad endpoint or credentials fail before the upload starts.
    await (scope === '' ? etcd.getAll() : etcd.getAll().prefix(scope)).limit(1).keys();
  } catch (err) {
    etcd.close();
    throw describeError(err);
  }
  const prefix = Buffer.from(scope);
  const range = readRange(etcd, { prefix, ...(options.revision !== undefined ? { revision: options.revision } : {}) });
  const writer = exportWriter(() => ({
    format: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    source: { type: 'etcd', ...(source.clusterId ? { clusterId: source.clusterId } : {}) },
    prefix: prefix.toString('base64'),
    revision: range.revision() ?? 0,
    createdAt: new Date().toISOString(),
  }));
  // One page queued at a time: an object stream's default of 16 would buffer 16 pages (~200 MiB) when
  // the upload is slower than etcd, and memory would grow with the keyspace.
  const bytes = pipeline(Readable.from(range.pages, { highWaterMark: 1 }), writer, () => undefined);
  return {
    endpoints: source.endpoints,
    extension: '.ndjson',
    bytes,
    describeError,
    facts: () => {
      const summary = writer.summary();
      const revision = range.revision();
      return {
        ...(revision !== undefined ? { revision } : {}),
        records: summary.count,
        details: { recordDigest: summary.digest },
      };
    },
    close: () => {
      etcd.close();
      return Promise.resolve();
    },
  };
}

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { FreshnessScan, type DumpFreshness } from '../formats/dump-freshness.js';
import { pxDumpTime, readPxDump } from '../formats/px-dump.js';
import { KvdrError } from '../util/errors.js';
import type { ArtifactSource } from './artifact-source.js';

export interface PxDumpFacts {
  contentSha256: string;
  records: number;
  maxKvdbIndex: number;
  /** Dumps taken from etcd carry KVDBIndex 0: their freshness is the highest mod revision. */
  maxModifiedIndex: number;
  freshness: DumpFreshness;
}

/** One pass over a dump: its sha256 (for de-duplication), key count and highest KVDBIndex. */
export async function scanPxDump(path: string): Promise<PxDumpFacts> {
  const hash = createHash('sha256');
  const input = createReadStream(path);
  input.on('data', (chunk) => hash.update(chunk as Buffer));
  let records = 0;
  const scan = new FreshnessScan();
  for await (const record of readPxDump(input, basename(path))) {
    records++;
    scan.add(record);
  }
  return { contentSha256: hash.digest('hex'), records, maxKvdbIndex: scan.maxKvdbIndex, maxModifiedIndex: scan.maxModifiedIndex, freshness: scan.freshness() };
}

/** A PX dump file as the artifact of a backup: stored as written, facts from a scan beforehand. */
export function pxDumpSource(path: string, facts: PxDumpFacts, node: string, clusterId: string | undefined): ArtifactSource {
  const time = pxDumpTime(basename(path));
  const bytes = createReadStream(path);
  return {
    endpoints: [`file://${path}`],
    extension: '.dump',
    bytes,
    describeError: (err) => new KvdrError(`${path}: cannot read the dump (${(err as NodeJS.ErrnoException).code ?? String(err)})`),
    facts: () => ({
      records: facts.records,
      details: {
        node,
        file: basename(path),
        ...(time ? { fileTime: time.toISOString() } : {}),
        ...(clusterId ? { clusterId } : {}),
        maxKvdbIndex: facts.maxKvdbIndex,
        maxModifiedIndex: facts.maxModifiedIndex,
        freshness: facts.freshness,
        contentSha256: facts.contentSha256,
      },
    }),
    close: () => {
      bytes.destroy();
      return Promise.resolve();
    },
  };
}

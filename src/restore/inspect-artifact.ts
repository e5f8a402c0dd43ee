import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { readKvdrExport } from '../formats/kvdr-export-reader.js';
import { readConsulSnapshotKv } from '../formats/consul-state-reader.js';
import { openEtcdSnapshot } from '../formats/etcd-snapshot-reader.js';
import type { KvRecord } from '../formats/record.js';
import { openRecords, type LocalArtifact } from './local-artifact.js';

export interface PrefixSummary {
  prefix: string;
  keys: number;
  bytes: number;
}

export interface ArtifactSummary {
  format: LocalArtifact['format'];
  /** etcd revision, or Consul raft index, when the artifact records one. */
  revision?: number;
  index?: number;
  keys: number;
  bytes: number;
  prefixes: PrefixSummary[];
}

/** What an artifact holds — like `etcdctl snapshot status` and `consul snapshot inspect`, for every kind. */
export async function inspectArtifact(artifact: LocalArtifact, depth = 1): Promise<ArtifactSummary> {
  const prefixes = new Map<string, PrefixSummary>();
  let keys = 0;
  let bytes = 0;
  let revision: number | undefined;
  let index: number | undefined;
  const count = async (records: AsyncIterable<KvRecord>): Promise<void> => {
    for await (const record of records) {
      const prefix = topPrefix(record.key.toString('utf8'), depth);
      const size = record.key.length + record.value.length;
      const entry = prefixes.get(prefix) ?? { prefix, keys: 0, bytes: 0 };
      entry.keys++;
      entry.bytes += size;
      prefixes.set(prefix, entry);
      keys++;
      bytes += size;
    }
  };
  if (artifact.format === 'etcd-snapshot' && !artifact.gzip) {
    const snapshot = await openEtcdSnapshot(artifact.path, artifact.label);
    try {
      await count(snapshot.records());
      revision = snapshot.revision();
    } finally {
      await snapshot.close();
    }
  } else if (artifact.format === 'consul-snapshot') {
    await count(readConsulSnapshotKv(createReadStream(artifact.path), artifact.label, (meta) => (index = meta?.Index)));
  } else if (artifact.format === 'etcd-export') {
    const raw = createReadStream(artifact.path);
    const reader = readKvdrExport(artifact.gzip ? raw.pipe(createGunzip()) : raw, artifact.label);
    revision = (await reader.header()).revision;
    await count(reader.records);
  } else {
    await count(openRecords(artifact));
  }
  return {
    format: artifact.format,
    ...(revision !== undefined ? { revision } : {}),
    ...(index !== undefined ? { index } : {}),
    keys,
    bytes,
    prefixes: [...prefixes.values()].sort((a, b) => a.prefix.localeCompare(b.prefix)),
  };
}

function topPrefix(key: string, depth: number): string {
  let at = -1;
  for (let i = 0; i < depth; i++) {
    const next = key.indexOf('/', at + 1);
    if (next < 0) return at < 0 ? key : key.slice(0, at + 1);
    at = next;
  }
  return key.slice(0, at + 1);
}

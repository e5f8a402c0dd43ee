import type { LocalArtifact } from './artifact.js';
import { openArtifact } from './local-artifact.js';

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
  const reader = openArtifact(artifact);
  try {
    for await (const record of reader.records()) {
      const prefix = topPrefix(record.key.toString('utf8'), depth);
      const size = record.key.length + record.value.length;
      const entry = prefixes.get(prefix) ?? { prefix, keys: 0, bytes: 0 };
      entry.keys++;
      entry.bytes += size;
      prefixes.set(prefix, entry);
      keys++;
      bytes += size;
    }
  } finally {
    await reader.close();
  }
  return {
    format: artifact.format,
    ...reader.origin(),
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

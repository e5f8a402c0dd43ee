import type { Manifest } from '../../src/repository/manifest.js';

/** A well-formed manifest for catalog tests; fields overridable. */
export function sampleManifest(overrides: Partial<Manifest> = {}): Manifest {
  const id = overrides.id ?? '20261123T010000Z-etcd-hourly-abc123';
  const job = overrides.job ?? 'etcd-hourly';
  return {
    formatVersion: 1,
    id,
    job,
    kind: 'etcd-snapshot',
    status: 'success',
    source: { name: 'px-etcd', type: 'etcd', endpoints: ['http://127.0.0.1:2379'], clusterId: 'c1', region: 'us-east-1' },
    scope: { prefix: 'pwx/c1/' },
    revision: 42,
    records: 7,
    bytes: { raw: 2048, stored: 1024 },
    sha256: 'a'.repeat(64),
    compression: 'gzip',
    encryption: { clientSide: false },
    repository: { name: 'local', type: 'fs', location: 'file:///tmp', key: `data/${job}/${id}.db.gz` },
    startedAt: '2026-11-23T01:00:00.000Z',
    finishedAt: '2026-11-23T01:00:05.000Z',
    toolVersion: '0.1.0',
    details: {},
    ...overrides,
  };
}

import { pipeline } from 'node:stream';
import type { SourceConfig } from '../config/schema.js';
import { verifyConsulSnapshot } from '../formats/consul-snapshot.js';
import { consulAccess } from '../sources/consul/connect.js';
import { consulIndex, consulRequest, consulVersion, consulVersionFacts, describeConsulFailure, staleReadFacts } from '../sources/consul/http.js';
import type { ArtifactSource } from './artifact-source.js';

/**
 * `GET /v1/snapshot`: Consul's own archive, stored as is (restorable by `consul snapshot restore`),
 * with its SHA256SUMS checked while it streams.
 */
export async function openConsulSnapshot(source: SourceConfig): Promise<ArtifactSource> {
  const access = consulAccess(source);
  const what = 'take a snapshot';
  const describeError = (err: unknown): Error => describeConsulFailure(err, access, { what }, 'stream');
  const version = consulVersionFacts(access, await consulVersion(access));
  const response = await consulRequest(access, {
    path: '/snapshot',
    query: { stale: source.stale || undefined },
    what,
    permission: 'a management token (acl = "write"), which snapshots require',
  });
  const check = verifyConsulSnapshot(`consul snapshot from ${access.address}`);
  const bytes = pipeline(response, check, () => undefined);
  const index = consulIndex(response);
  const stale = staleReadFacts(access, response);
  return {
    endpoints: [access.address],
    extension: '.snap',
    bytes,
    describeError,
    warnings: [...version.warnings, ...stale.warnings],
    facts: () => {
      const meta = check.meta();
      return {
        ...(index !== undefined ? { raftIndex: index } : {}),
        details: {
          ...version.details,
          ...stale.details,
          snapshotIndex: meta?.Index,
          snapshotTerm: meta?.Term,
          snapshotFormat: meta?.Version,
          sha256sums: check.sums(),
        },
      };
    },
    close: () => {
      response.destroy();
      return Promise.resolve();
    },
  };
}

import { pipeline, Readable } from 'node:stream';
import type { SourceConfig } from '../config/schema.js';
import { consulExportWriter, recordFromConsul, type ConsulKvPair } from '../formats/consul-export.js';
import type { KvRecord } from '../formats/record.js';
import { readJsonArray } from '../formats/json-array-reader.js';
import { consulAccess } from '../sources/consul/connect.js';
import { keyPath } from '../sources/consul/consul-target.js';
import { consulIndex, consulRequest, consulVersion, consulVersionFacts, describeConsulFailure, staleReadFacts } from '../sources/consul/http.js';
import type { ArtifactSource } from './artifact-source.js';

/**
 * The scope's KV pairs from one consistent read (`GET /v1/kv/<scope>?recurse&consistent`), parsed as
 * they arrive and written in `consul kv export` format.
 */
export interface ConsulExportOptions {
  /** Sees every record as it is exported (a continuous job keeps the key set to follow changes from). */
  observe?: (record: KvRecord) => void;
}

export async function openConsulExport(source: SourceConfig, scope: string, options: ConsulExportOptions = {}): Promise<ArtifactSource> {
  const access = consulAccess(source);
  const what = `export ${scope || 'the KV store'}`;
  const describeError = (err: unknown): Error => describeConsulFailure(err, access, { what }, 'stream');
  const version = consulVersionFacts(access, await consulVersion(access));
  const answer = await consulRequest(access, {
    path: `/kv/${keyPath(scope)}`,
    query: { recurse: true, ...(source.stale ? { stale: true } : { consistent: true }) },
    what,
    permission: `key_prefix "${scope}" { policy = "read" }`,
    accept: [404],
  });
  // 404 is Consul's answer for a prefix without keys: an empty export, not a failure.
  const response = answer.statusCode === 404 ? (answer.resume(), undefined) : answer;
  const index = consulIndex(answer);
  const stale = staleReadFacts(access, answer);
  const writer = consulExportWriter();
  async function* records(): AsyncIterable<ReturnType<typeof recordFromConsul>> {
    if (!response) return;
    for await (const { value } of readJsonArray(response, `consul ${access.address}`)) {
      const record = recordFromConsul(value as ConsulKvPair);
      options.observe?.(record);
      yield record;
    }
  }
  const bytes = pipeline(Readable.from(records()), writer, () => undefined);
  return {
    endpoints: [access.address],
    extension: '.json',
    bytes,
    describeError,
    warnings: [...version.warnings, ...stale.warnings],
    facts: () => {
      const summary = writer.summary();
      return {
        ...(index !== undefined ? { raftIndex: index } : {}),
        records: summary.count,
        details: { recordDigest: summary.digest, ...version.details, ...stale.details },
      };
    },
    close: () => {
      response?.destroy();
      return Promise.resolve();
    },
  };
}

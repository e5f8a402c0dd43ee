import type { RepositoryConfig } from '../config/schema.js';
import { readChain } from '../repository/chain-reader.js';
import { chainPath, currentPath, goesOnPast, listSegments, segmentRetired } from '../repository/chains.js';
import { readCatalog } from '../repository/catalog.js';
import { baseRevision, isChainBase, type Manifest } from '../repository/manifest.js';
import type { ObjectStore } from '../repository/object-store.js';
import { fetchVerified } from './fetch-backup.js';
import { openArtifact } from './local-artifact.js';

/** Which changes to list: a time or revision range, and a key or prefix. */
export interface ChangeQuery {
  /** Unix ms, inclusive. */
  since?: number;
  until?: number;
  sinceRevision?: number;
  untilRevision?: number;
  /** Whole keys (as the source holds them) starting with this. */
  prefix?: Buffer;
  /** Exactly this key. */
  key?: Buffer;
}

/** One change, with what the key held just before it: the answer to "what was it before it was deleted". */
export interface ChangeRecord {
  job: string;
  base: string;
  op: 'put' | 'del';
  key: Buffer;
  /** The new value (puts). */
  value?: Buffer;
  /** The value just before this change, when the key existed. */
  before?: Buffer;
  revision: number;
  /** When kvdr observed it (Unix ms). */
  at: number;
}

/**
 * The changes of a continuous job that match a query, oldest first, read from its chains (bases and
 * segments). The values keys held before a change come from the base and the chain itself, for the
 * keys the query selects only, so memory grows with what is asked for, not with the scope.
 */
export async function* changeHistory(store: ObjectStore, repository: RepositoryConfig, job: string, query: ChangeQuery): AsyncIterable<ChangeRecord> {
  const matches = (key: Buffer): boolean => (query.key ? key.equals(query.key) : query.prefix ? key.subarray(0, query.prefix.length).equals(query.prefix) : true);
  const bases = (await readCatalog(store, { job })).filter((m) => m.details['role'] === 'base');
  const segments = await listSegments(store, job);
  for (const [i, base] of bases.entries()) {
    const next = bases[i + 1];
    // A chain ends where the next begins (skip the ones wholly outside the range), unless it goes on past
    // it: a base taken on its own while the service follows this chain.
    const endsAt = next && !goesOnPast(segments.get(base.id) ?? [], next) ? next : undefined;
    if (query.until !== undefined && Date.parse(base.finishedAt) > query.until) break;
    if (query.since !== undefined && endsAt && Date.parse(endsAt.finishedAt) < query.since) continue;
    if (query.untilRevision !== undefined && baseRevision(base) > query.untilRevision) break;
    if (query.sinceRevision !== undefined && endsAt && baseRevision(endsAt) < query.sinceRevision) continue;
    const from = baseRevision(base) + 1;
    let path = chainPath(base.id, segments.get(base.id) ?? [], from);
    // The last revision handed out, and what a replay sent back by a merge (below) skips: a revision's
    // changes are all in one segment, so a replay never stops inside one.
    let yielded = 0;
    let skip = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const values = await baseValues(store, repository, base, matches);
        const chain = readChain(store, path, baseRevision(base), query.untilRevision !== undefined ? { revision: query.untilRevision } : query.until !== undefined ? { at: query.until } : {});
        for await (const event of chain.events) {
          if (!matches(event.key)) continue;
          const id = event.key.toString('latin1');
          const before = values.get(id);
          if (event.op === 'put') values.set(id, event.value);
          else values.delete(id);
          if (query.since !== undefined && event.at < query.since) continue;
          if (query.sinceRevision !== undefined && event.revision < query.sinceRevision) continue;
          if (event.revision <= skip) continue;
          yield { job, base: base.id, op: event.op, key: event.key, ...(event.op === 'put' ? { value: event.value } : {}), ...(before ? { before } : {}), revision: event.revision, at: event.at };
          yielded = event.revision;
        }
        break;
      } catch (err) {
        // A merge retired a segment since the listing: once more from a fresh listing (see segmentRetired).
        if (attempt > 0 || !segmentRetired(err, path)) throw err;
        path = await currentPath(store, job, base.id, from);
        skip = yielded;
      }
    }
  }
}

/** The base's values of the selected keys (verified download, one pass). */
async function baseValues(store: ObjectStore, repository: RepositoryConfig, base: Manifest, matches: (key: Buffer) => boolean): Promise<Map<string, Buffer>> {
  const values = new Map<string, Buffer>();
  const fetched = await fetchVerified({ manifest: base, store, repository });
  const reader = openArtifact(fetched.artifact);
  try {
    for await (const record of reader.records()) if (matches(record.key)) values.set(record.key.toString('latin1'), record.value);
  } finally {
    await reader.close();
    await fetched.cleanup();
  }
  return values;
}

/** The continuous jobs whose chains live in a repository, from its catalog. */
export async function continuousJobsIn(store: ObjectStore): Promise<string[]> {
  const jobs = new Set<string>();
  for (const m of await readCatalog(store)) if (isChainBase(m)) jobs.add(m.job);
  return [...jobs];
}

import type { KvdrConfig, RepositoryConfig } from '../config/schema.js';
import { readCatalog } from '../repository/catalog.js';
import { DATA, parseSegmentKey, SEGMENTS } from '../repository/layout.js';
import { isChainBase, type Manifest } from '../repository/manifest.js';
import type { ObjectStore, StoreProtection } from '../repository/object-store.js';
import { openStore } from '../repository/open-store.js';
import { checkChain, readTrail, type AuditEvent, type TrailCheck, type TrailItem } from './audit-log.js';
import { auditRepository } from './audit-repository.js';

/** Everything the controls judge, read once: the evidence is the repositories' own listings and the trail. */
export interface AuditInputs {
  config: KvdrConfig;
  since: Date;
  until: Date;
  /** Every backup the repositories hold now (all time, not only the period). */
  manifests: Manifest[];
  /** `<repository>/<key>` of every stored artifact. */
  artifacts: Set<string>;
  /** Every event of the trail, in order. */
  events: AuditEvent[];
  trail: TrailCheck & { location: string };
  protection: Map<string, StoreProtection>;
  /** Continuous jobs' chains as the repositories list them: base, segment count, newest segment. */
  chains: ChainCoverage[];
}

/** One chain of a continuous job, from a listing: restorable from its base's time to its newest segment's. */
export interface ChainCoverage {
  job: string;
  repository: string;
  base: string;
  /** When the base was taken (its manifest's finishedAt). */
  from: string;
  /** When its newest segment was stored (the base's time when it has none): the chain's durable point. */
  to: string;
  segments: number;
}

export async function gatherAuditInputs(config: KvdrConfig, since: Date, until: Date): Promise<AuditInputs> {
  const manifests: Manifest[] = [];
  const artifacts = new Set<string>();
  const protection = new Map<string, StoreProtection>();
  const chains: ChainCoverage[] = [];
  for (const repository of config.repositories) {
    const store = openStore(repository);
    try {
      const held = await readCatalog(store);
      manifests.push(...held);
      chains.push(...(await chainCoverage(store, repository.name, held)));
      for await (const info of store.list(DATA)) artifacts.add(artifactRef(repository.name, info.key));
      protection.set(repository.name, await store.protection());
    } finally {
      await store.close();
    }
  }
  const trailStore = openStore(auditRepository(config));
  try {
    const items: TrailItem[] = [];
    for await (const item of readTrail(trailStore)) items.push(item);
    const events = items.flatMap((item) => ('event' in item ? [item.event] : []));
    const trail = { ...(await checkChain(items)), location: trailStore.location };
    return { config, since, until, manifests, artifacts, events, trail, protection, chains };
  } finally {
    await trailStore.close();
  }
}

export function artifactRef(repository: RepositoryConfig['name'], key: string): string {
  return `${repository}/${key}`;
}

/** The chains of every continuous job in one repository, from one listing of its segments. */
async function chainCoverage(store: ObjectStore, repository: string, manifests: readonly Manifest[]): Promise<ChainCoverage[]> {
  const newest = new Map<string, { count: number; last: number }>();
  for await (const info of store.list(SEGMENTS)) {
    const segment = parseSegmentKey(info.key);
    if (!segment) continue;
    const id = `${segment.job}/${segment.base}`;
    const seen = newest.get(id) ?? { count: 0, last: 0 };
    // A merged segment's time is when it was merged; the newest change is in a small one (the tail is never merged).
    const time = segment.last === undefined ? info.lastModified.getTime() : 0;
    newest.set(id, { count: seen.count + 1, last: Math.max(seen.last, time) });
  }
  return manifests
    .filter(isChainBase)
    .map((m) => {
      const seen = newest.get(`${m.job}/${m.id}`);
      const to = seen && seen.last > Date.parse(m.finishedAt) ? new Date(seen.last).toISOString() : m.finishedAt;
      return { job: m.job, repository, base: m.id, from: m.finishedAt, to, segments: seen?.count ?? 0 };
    });
}

import type { KvdrConfig, RepositoryConfig } from '../config/schema.js';
import { readCatalog } from '../repository/catalog.js';
import { DATA } from '../repository/layout.js';
import type { Manifest } from '../repository/manifest.js';
import type { StoreProtection } from '../repository/object-store.js';
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
}

export async function gatherAuditInputs(config: KvdrConfig, since: Date, until: Date): Promise<AuditInputs> {
  const manifests: Manifest[] = [];
  const artifacts = new Set<string>();
  const protection = new Map<string, StoreProtection>();
  for (const repository of config.repositories) {
    const store = openStore(repository);
    try {
      manifests.push(...(await readCatalog(store)));
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
    return { config, since, until, manifests, artifacts, events, trail, protection };
  } finally {
    await trailStore.close();
  }
}

export function artifactRef(repository: RepositoryConfig['name'], key: string): string {
  return `${repository}/${key}`;
}

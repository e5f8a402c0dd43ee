import { MANIFESTS, parseManifestKey } from './layout.js';
import type { Manifest } from './manifest.js';
import { readManifest } from './manifest-store.js';
import type { ObjectStore } from './object-store.js';

export interface CatalogFilter {
  job?: string;
  kind?: string;
}

/**
 * The backups a repository holds, rebuilt from a listing of its manifests every time: there is no
 * index to fall out of step with the objects. Sorted oldest first.
 */
export async function readCatalog(store: ObjectStore, filter: CatalogFilter = {}): Promise<Manifest[]> {
  const prefix = filter.job ? `${MANIFESTS}${filter.job}/` : MANIFESTS;
  const keys: string[] = [];
  for await (const info of store.list(prefix)) {
    if (parseManifestKey(info.key)) keys.push(info.key);
  }
  const manifests = await mapLimited(keys, 16, (key) => readManifest(store, key));
  return manifests
    .filter((m) => filter.kind === undefined || m.kind === filter.kind)
    .sort(oldestFirst);
}

/**
 * The one order of backups everywhere: by when they finished, then started (ISO, millisecond
 * precision), then id. Ids alone tie-break at random within one second.
 */
export function oldestFirst(a: Manifest, b: Manifest): number {
  return a.finishedAt.localeCompare(b.finishedAt) || a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id);
}

async function mapLimited<T, R>(items: readonly T[], width: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return out;
}

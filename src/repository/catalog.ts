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
 *
 * Manifests are write-once, so each is read once for as long as the listing shows the same object
 * (size, ETag, modification time; a manifest overwritten in place is read again): `kvdr serve`, which
 * reads the catalog for every run, prune, drill and status page, GETs only the manifests new since its
 * last look. What a listing no longer shows leaves the cache with it.
 */
export async function readCatalog(store: ObjectStore, filter: CatalogFilter = {}): Promise<Manifest[]> {
  const prefix = filter.job ? `${MANIFESTS}${filter.job}/` : MANIFESTS;
  const cached = cacheOf(store.location);
  const listed: { key: string; stamp: string }[] = [];
  for await (const info of store.list(prefix)) {
    if (parseManifestKey(info.key)) listed.push({ key: info.key, stamp: `${info.size}/${info.etag ?? ''}/${info.lastModified.getTime()}` });
  }
  const shown = new Set(listed.map((l) => l.key));
  for (const key of cached.keys()) if (key.startsWith(prefix) && !shown.has(key)) cached.delete(key);
  const manifests = await mapLimited(listed, 16, async ({ key, stamp }) => {
    const hit = cached.get(key);
    if (hit?.stamp === stamp) return hit.manifest;
    const manifest = await readManifest(store, key);
    cached.set(key, { stamp, manifest });
    return manifest;
  });
  return manifests
    .filter((m) => filter.kind === undefined || m.kind === filter.kind)
    .sort(oldestFirst)
    .map((m) => structuredClone(m)); // callers get their own copies: the cached ones stay as read
}

/** A parsed manifest by key, with the listing stamp it was read under. */
type ManifestCache = Map<string, { stamp: string; manifest: Manifest }>;

/** By repository location. */
const manifestCache = new Map<string, ManifestCache>();

function cacheOf(location: string): ManifestCache {
  let cached = manifestCache.get(location);
  if (!cached) {
    cached = new Map() as ManifestCache;
    manifestCache.set(location, cached);
  }
  return cached;
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

import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { KvdrConfig, RepositoryConfig } from '../config/schema.js';
import { oldestFirst, readCatalog } from '../repository/catalog.js';
import { manifestKey } from '../repository/layout.js';
import type { Manifest } from '../repository/manifest.js';
import { readManifest } from '../repository/manifest-store.js';
import type { ObjectStore } from '../repository/object-store.js';
import { openStore } from '../repository/open-store.js';
import { freshnessOf, rankDumps } from '../formats/dump-freshness.js';
import { IntegrityError, UsageError } from '../util/errors.js';
import { hashCounter } from '../util/hash-counter.js';
import type { ArtifactFormat, LocalArtifact } from './artifact.js';

export interface BackupSelector {
  backup?: string;
  latest?: boolean;
  job?: string;
  kind?: string;
  before?: Date;
  clusterId?: string;
}

export interface SelectedBackup {
  manifest: Manifest;
  store: ObjectStore;
  repository: RepositoryConfig;
  /** Why this one, when there was a choice worth explaining (PX dumps). */
  reason?: string;
}

/** Finds the backup to restore: by id, or the newest matching --job/--kind/--before/--cluster-id. */
export async function selectBackup(config: KvdrConfig, selector: BackupSelector): Promise<SelectedBackup> {
  if ((selector.backup === undefined) === (selector.latest !== true)) throw new UsageError('give exactly one of --backup <id> or --latest');
  const candidates: SelectedBackup[] = [];
  const stores: ObjectStore[] = [];
  const keep = async (chosen: SelectedBackup): Promise<SelectedBackup> => {
    await Promise.all(stores.filter((s) => s !== chosen.store).map((s) => s.close()));
    return chosen;
  };
  for (const repository of config.repositories) {
    const store = openStore(repository);
    stores.push(store);
    if (selector.backup !== undefined) {
      const job = jobOf(selector.backup);
      if (job && (await store.head(manifestKey(job, selector.backup)))) {
        return keep({ manifest: await readManifest(store, manifestKey(job, selector.backup)), store, repository });
      }
    } else {
      for (const manifest of await readCatalog(store, { ...(selector.job ? { job: selector.job } : {}), ...(selector.kind ? { kind: selector.kind } : {}) })) {
        // Safety backups are chosen by id, or with --job safety-backup, never by accident.
        if (manifest.kind === 'safety-backup' && selector.job !== 'safety-backup') continue;
        if (selector.before && Date.parse(manifest.finishedAt) >= selector.before.getTime()) continue;
        if (selector.clusterId && manifest.source.clusterId !== selector.clusterId) continue;
        candidates.push({ manifest, store, repository });
      }
    }
  }
  const newest = candidates.every((c) => c.manifest.kind === 'px-dumps') ? freshestDump(candidates) : candidates.sort((a, b) => oldestFirst(a.manifest, b.manifest)).at(-1);
  if (newest) return keep(newest);
  await Promise.all(stores.map((s) => s.close()));
  if (selector.backup !== undefined) throw new UsageError(`no backup ${selector.backup} in ${config.repositories.map((r) => r.name).join(', ')}; see kvdr backups list`);
  const filters = Object.entries({ job: selector.job, kind: selector.kind, before: selector.before?.toISOString(), 'cluster-id': selector.clusterId })
      .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `--${k} ${String(v)}`);
  throw new UsageError(`no backup matches${filters.length ? ` ${filters.join(' ')}` : ''}; see kvdr backups list`);
}

/**
 * Among stored PX dumps (several nodes, several files), the freshest by content (see rankDumps): the
 * manifests record each dump's highest KVDBIndex and ModifiedIndex; when it was uploaded says nothing.
 */
function freshestDump(candidates: SelectedBackup[]): SelectedBackup | undefined {
  const number = (c: SelectedBackup, field: string): number => Number(c.manifest.details[field] ?? 0) || 0;
  const ranking = rankDumps(
    candidates.map((c) => {
      const time = c.manifest.details['fileTime'];
      return {
        item: c,
        name: `${String(c.manifest.details['file'])} from ${String(c.manifest.details['node'])}`,
        freshness: freshnessOf(number(c, 'maxKvdbIndex'), number(c, 'maxModifiedIndex')),
        ...(typeof time === 'string' ? { time: new Date(time) } : {}),
      };
    }),
  );
  if (!ranking) return undefined;
  const { chosen, others, why } = ranking;
  const next = others[0] ? ` (next: ${others[0].name} at ${others[0].freshness.value})` : '';
  return { ...chosen.item, reason: `chose ${chosen.item.manifest.id} (${chosen.name}): ${why}${others[0] && !why.includes('ties') ? next : ''}` };
}

/** The job name inside a backup id `<stamp>-<job>-<6 hex>`. */
function jobOf(id: string): string | undefined {
  return /^\d{8}T\d{6}Z-(.+)-[0-9a-f]{6}$/.exec(id)?.[1];
}

/** The format of the artifact a manifest describes. */
export function formatOf(manifest: Manifest): ArtifactFormat {
  // A safety backup and a continuous job's base are exports: their manifests say which format.
  const kind = manifest.kind === 'safety-backup' || manifest.kind === 'etcd-continuous' || manifest.kind === 'consul-continuous' ? String(manifest.details['format']) : manifest.kind;
  return kind === 'px-dumps' ? 'px-dump' : (kind as ArtifactFormat);
}

/**
 * Downloads an artifact into a private temp file while hashing it, and compares the hash with the
 * manifest before anything is written to a target (invariant 4). Call `cleanup` when done.
 */
export async function fetchVerified(selected: SelectedBackup): Promise<{ artifact: LocalArtifact; cleanup: () => Promise<void> }> {
  const { manifest, store } = selected;
  const dir = await mkdtemp(join(tmpdir(), 'kvdr-restore-'));
  const path = join(dir, 'artifact');
  const cleanup = (): Promise<void> => rm(dir, { recursive: true, force: true });
  try {
    const counted = hashCounter();
    await pipeline(await store.get(manifest.repository.key), counted, createWriteStream(path, { mode: 0o600 }));
    const actual = counted.sha256() ?? '';
    if (actual !== manifest.sha256) {
      throw new IntegrityError(
        `backup ${manifest.id}: the artifact's sha256 (${actual.slice(0, 16)}…) does not match its manifest (${manifest.sha256.slice(0, 16)}…); it is corrupt and nothing was written`,
      );
    }
    return { artifact: { path, format: formatOf(manifest), compression: manifest.compression, label: `backup ${manifest.id}` }, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

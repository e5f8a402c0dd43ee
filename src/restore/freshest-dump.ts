import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { FreshnessScan, rankDumps, type DumpCandidate } from '../formats/dump-freshness.js';
import { pxDumpTime, readPxDump } from '../formats/px-dump.js';
import { UsageError } from '../util/errors.js';
import { inflated, sniffArtifact } from './local-artifact.js';

export interface DumpChoice {
  /** The dump to restore. */
  path: string;
  /** One line: which dump, and why — said whenever there was a choice to make. */
  reason?: string;
}

/**
 * Picks the freshest of several local PX dumps (several nodes, or several files) by their content
 * (see rankDumps): each is read once, in full, so a damaged one is refused here too.
 */
export async function chooseFreshestDump(paths: readonly string[], maxInflatedBytes?: number): Promise<DumpChoice> {
  const files = await expand(paths);
  if (files.length === 0) throw new UsageError(`no pwx_kvdb_*.dump files in ${paths.join(', ')}`);
  if (files.length === 1) return { path: files[0] as string };
  const candidates: DumpCandidate<string>[] = [];
  for (const path of files) {
    const artifact = await sniffArtifact(path, maxInflatedBytes, 'px-dump');
    if (artifact.format !== 'px-dump') throw new UsageError(`--kvdb_dump_file: ${artifact.label} is a ${artifact.format}, not a PX dump; use --file`);
    const scan = new FreshnessScan();
    for await (const record of readPxDump(inflated(artifact), artifact.label)) scan.add(record);
    const time = pxDumpTime(basename(path));
    candidates.push({ item: path, name: basename(path), freshness: scan.freshness(), ...(time ? { time } : {}) });
  }
  const ranking = rankDumps(candidates);
  if (!ranking) throw new UsageError(`no pwx_kvdb_*.dump files in ${paths.join(', ')}`);
  const others = ranking.others.map((c) => `${c.name} ${c.freshness.signal} ${c.freshness.value}`).join(', ');
  return { path: ranking.chosen.item, reason: `chose ${ranking.chosen.name}: ${ranking.why} (others: ${others})` };
}

async function expand(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new UsageError(`--kvdb_dump_file: ${path}: no such file or directory`);
    if (info.isDirectory()) {
      for (const name of (await readdir(path)).sort()) if (/^pwx_kvdb_.*\.dump(\.gz)?$/.test(name)) out.push(join(path, name));
    } else out.push(path);
  }
  return out;
}

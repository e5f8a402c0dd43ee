import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pxDumpTime, readPxDump } from '../formats/px-dump.js';
import { UsageError } from '../util/errors.js';
import { sniffArtifact } from './local-artifact.js';

export interface DumpCandidate {
  path: string;
  maxKvdbIndex: number;
  /** The time in the file name, if it has one. */
  time?: Date;
}

export interface DumpChoice {
  chosen: DumpCandidate;
  /** One line: which dump, and why. */
  reason: string;
}

/**
 * Picks the freshest of several PX dumps (several nodes, or several files): the one whose highest
 * KVDBIndex is greatest, ties broken by the time in the file name. The name alone is not trusted —
 * a node's clock can be wrong, and a later dump can come from a node that was behind.
 */
export async function chooseFreshestDump(paths: readonly string[]): Promise<DumpChoice> {
  const files = await expand(paths);
  if (files.length === 0) throw new UsageError(`no pwx_kvdb_*.dump files in ${paths.join(', ')}`);
  const candidates: DumpCandidate[] = [];
  for (const path of files) {
    const artifact = await sniffArtifact(path);
    if (artifact.format !== 'px-dump') throw new UsageError(`--kvdb_dump_file: ${artifact.label} is a ${artifact.format}, not a PX dump; use --file`);
    let maxKvdbIndex = 0;
    for await (const record of readPxDump(createReadStream(path), basename(path))) maxKvdbIndex = Math.max(maxKvdbIndex, record.kvdbIndex);
    const time = pxDumpTime(basename(path));
    candidates.push({ path, maxKvdbIndex, ...(time ? { time } : {}) });
  }
  const ordered = [...candidates].sort((a, b) => b.maxKvdbIndex - a.maxKvdbIndex || (b.time?.getTime() ?? 0) - (a.time?.getTime() ?? 0));
  const chosen = ordered[0] as DumpCandidate;
  if (ordered.length === 1) return { chosen, reason: `${basename(chosen.path)}: the only dump (highest KVDBIndex ${chosen.maxKvdbIndex})` };
  const runnerUp = ordered[1] as DumpCandidate;
  const why =
    chosen.maxKvdbIndex > runnerUp.maxKvdbIndex
      ? `highest KVDBIndex ${chosen.maxKvdbIndex}`
      : `KVDBIndex ${chosen.maxKvdbIndex} ties with ${basename(runnerUp.path)}; the later time in its name breaks the tie`;
  const others = ordered.slice(1).map((c) => `${basename(c.path)} ${c.maxKvdbIndex}`).join(', ');
  return { chosen, reason: `chose ${basename(chosen.path)}: ${why} (others: ${others})` };
}

async function expand(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new UsageError(`--kvdb_dump_file: ${path}: no such file or directory`);
    if (info.isDirectory()) {
      for (const name of (await readdir(path)).sort()) if (/^pwx_kvdb_.*\.dump$/.test(name)) out.push(join(path, name));
    } else out.push(path);
  }
  return out;
}

import type { KvRecord } from '../formats/record.js';
import { SetDigest } from '../formats/set-digest.js';
import type { KvTarget } from '../sources/kv-target.js';
import { KvdrError } from '../util/errors.js';
import type { KeyScope } from './key-scope.js';

/** What a restore will write, learned by reading the whole artifact once before any write. */
export interface RestorePlan {
  records: number;
  bytes: number;
  /** Records per first path segment under the scope (the largest paths; the rest folded together). */
  byTopLevel: TopLevelCounts;
  /** Artifact records outside `--prefix`, left out. */
  skipped: number;
  /** Records that carried an etcd lease, which a replay cannot keep. */
  leased: number;
  /** SetDigest of the records as they will be written. */
  digest: string;
}

export interface TopLevelSummary {
  /** The largest paths, by name. */
  rows: [path: string, keys: number][];
  /** Every other path, folded into one line. */
  others?: { paths: number; keys: number };
}

/**
 * Keys per top-level path in bounded memory: a flat keyspace has one path per key, so past `capacity`
 * paths the smaller half is folded into one "others" count. A folded path that shows up again is
 * counted afresh (and once more among the others' paths); artifacts mostly list a path's keys together.
 */
export class TopLevelCounts {
  private readonly counts = new Map<string, number>();
  private folded = { paths: 0, keys: 0 };

  constructor(private readonly capacity = 1000) {}

  add(path: string): void {
    const count = this.counts.get(path);
    if (count === undefined && this.counts.size >= this.capacity) this.fold(Math.floor(this.capacity / 2));
    this.counts.set(path, (count ?? 0) + 1);
  }

  /** The `limit` largest paths (ties: by name), and what all the others add up to. */
  summary(limit = 20): TopLevelSummary {
    const largest = this.bySize();
    const others = largest.slice(limit).reduce((sum, [, keys]) => ({ paths: sum.paths + 1, keys: sum.keys + keys }), this.folded);
    const rows = largest.slice(0, limit).sort(([a], [b]) => a.localeCompare(b));
    return others.paths > 0 ? { rows, others } : { rows };
  }

  /** `--json` output: path → keys, the others under "(N other paths)". */
  toJSON(): Record<string, number> {
    const { rows, others } = this.summary();
    return Object.fromEntries(others ? [...rows, [otherPaths(others.paths), others.keys]] : rows);
  }

  private bySize(): [string, number][] {
    return [...this.counts.entries()].sort(([pa, a], [pb, b]) => b - a || pa.localeCompare(pb));
  }

  private fold(keep: number): void {
    for (const [path, keys] of this.bySize().slice(keep)) {
      this.counts.delete(path);
      this.folded = { paths: this.folded.paths + 1, keys: this.folded.keys + keys };
    }
  }
}

export function otherPaths(paths: number): string {
  return `(${paths} other path${paths === 1 ? '' : 's'})`;
}

/**
 * The pre-flight pass: reads every record (so a truncated or damaged artifact fails here, before any
 * write), maps keys into the scope, and refuses what the target cannot hold.
 */
export async function planRestore(records: AsyncIterable<KvRecord>, scope: KeyScope, target: KvTarget): Promise<RestorePlan> {
  const digest = new SetDigest();
  const byTopLevel = new TopLevelCounts();
  const oversize: string[] = [];
  const badKeys: string[] = [];
  const consul = target.description.startsWith('consul:');
  let oversizeCount = 0;
  let badKeyCount = 0;
  let bytes = 0;
  let skipped = 0;
  let leased = 0;
  for await (const record of records) {
    const key = scope.map(record.key);
    if (!key) {
      skipped++;
      continue;
    }
    digest.add(key, record.value);
    bytes += key.length + record.value.length;
    if (record.lease && record.lease !== '0') leased++;
    byTopLevel.add(scope.topLevel(key));
    // Only the first few offenders are kept for the message: the counts are what matter.
    if (target.maxValueBytes !== undefined && record.value.length > target.maxValueBytes && oversizeCount++ < 3) oversize.push(`${key.toString()} (${record.value.length} bytes)`);
    if (consul && !Buffer.from(key.toString('utf8'), 'utf8').equals(key) && badKeyCount++ < 3) badKeys.push(key.toString('hex'));
  }
  if (oversizeCount > 0) {
    throw new KvdrError(
      `${target.description} holds values of at most ${target.maxValueBytes} bytes; ${oversizeCount} to restore are larger (${oversize.join(', ')}${oversizeCount > 3 ? ', …' : ''}); nothing was written — restore into etcd, or leave them out with --prefix`,
    );
  }
  if (badKeyCount > 0) {
    throw new KvdrError(`${target.description} keys must be UTF-8; ${badKeyCount} to restore are not (hex ${badKeys.join(', ')}${badKeyCount > 3 ? ', …' : ''}); nothing was written — restore into etcd`);
  }
  return { records: digest.count, bytes, byTopLevel, skipped, leased, digest: digest.digest() };
}

import type { KvRecord } from '../formats/record.js';
import { SequenceDigest, SetDigest } from '../formats/set-digest.js';
import type { KvTarget } from '../sources/kv-target.js';
import { IntegrityError, UsageError } from '../util/errors.js';
import { confirmDuplicate, KeyFingerprints } from './key-set.js';
import type { KeyScope } from './key-scope.js';
import type { Spool } from './spool.js';

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
  /**
   * What verification compares the scope with: the SequenceDigest of the records as they will be written
   * when `ascending` (the scope reads back in key order), else their SetDigest.
   */
  digest: string;
  /** Every SPLIT_EVERY-th key to write, ascending: lets verification read the scope in bounded pieces (see ReadHints). */
  splits: Buffer[];
  /** The keys to write come in strictly ascending order (exports, snapshots): verification can follow the writes. */
  ascending: boolean;
}

/** One split key per this many records: a few hundred bytes of keys per million records. */
const SPLIT_EVERY = 16_384;

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

/** How a plan names a key in a message: as text when it is printable UTF-8, else as hex; shortened. */
export function showKey(key: Buffer, max = 60): string {
  const text = key.toString('utf8');
  const printable = Buffer.from(text, 'utf8').equals(key) && ![...text].some((c) => (c.codePointAt(0) as number) < 0x20 || c === '\u007f');
  const shown = printable ? JSON.stringify(text) : `hex:${key.toString('hex')}`;
  return shown.length > max ? `${shown.slice(0, max - 1)}…` : shown;
}

/** Offenders of one kind: how many, and the first few for the message. */
class Offenders {
  count = 0;
  readonly examples: string[] = [];
  add(example: () => string): void {
    if (this.count++ < 3) this.examples.push(example());
  }
  list(): string {
    return `${this.examples.join(', ')}${this.count > this.examples.length ? ', …' : ''}`;
  }
}

/** Reads the artifact's records once more, numbered, for the duplicate check's second look. */
export type NumberedPass = () => AsyncIterable<{ key: Buffer; index: number }>;

/**
 * The pre-flight pass (invariant 5): reads every record before any write, so a truncated or damaged
 * artifact fails here; maps keys into the scope; and refuses what the target cannot hold (values over
 * its limit, keys it rejects or would alter — asked of the target itself) and what no valid artifact
 * holds (the same key twice, a key that would land outside the scope). The messages name the key, its
 * record number, the limit and what to do. A real duplicate is confirmed on a second look at only the
 * suspected keys (see KeyFingerprints), which runs only when the first pass found a suspect.
 */
export async function planRestore(
  records: AsyncIterable<KvRecord>,
  scope: KeyScope,
  target: KvTarget,
  options: {
    label: string;
    again: NumberedPass;
    signal?: AbortSignal;
    /** Count keys per top-level path (dry runs print it); off, the plan skips that work. @defaultValue true */
    summarise?: boolean;
    /** Where the records to write go, keys mapped, for the replay to read instead of the artifact. */
    spool?: Spool;
  },
): Promise<RestorePlan> {
  const { spool } = options;
  const digest = new SetDigest();
  const sequence = new SequenceDigest();
  // Keys in strictly ascending order cannot repeat, and their SequenceDigest is all verification needs:
  // the fingerprints and the SetDigest (a sha256 per record, a fifth of the pass) wait for the first key
  // out of order. The records before it are then taken from the spool; without one (a dry run), every
  // record gets both from the start.
  const deferred = spool !== undefined;
  let orderedRecords = 0;
  let count = 0;
  const byTopLevel = new TopLevelCounts();
  const keys = new KeyFingerprints();
  const oversize = new Offenders();
  const refused = new Offenders();
  const escaping = new Offenders();
  let bytes = 0;
  let skipped = 0;
  let leased = 0;
  let index = -1;
  const splits: Buffer[] = [];
  const summarise = options.summarise ?? true;
  let previous: Buffer | undefined;
  let ascending = true;
  for await (const record of records) {
    index++;
    if ((index & 0x3ff) === 0) options.signal?.throwIfAborted();
    const key = scope.map(record.key);
    if (!key) {
      skipped++;
      continue;
    }
    if (!scope.holds(key)) escaping.add(() => `${showKey(record.key)} (record ${index})`);
    if (ascending && previous && Buffer.compare(previous, key) >= 0) {
      ascending = false;
      orderedRecords = count;
    }
    previous = Buffer.from(key); // a copy: a reader may reuse the buffer a key was a view of
    if (count % SPLIT_EVERY === SPLIT_EVERY - 1) splits.push(Buffer.from(key));
    count++;
    if (ascending) sequence.add(key, record.value);
    if (!ascending || !deferred) {
      keys.add(key);
      digest.add(key, record.value);
    }
    if (spool) {
      const flushing = spool.add(key, record.value, record.flags);
      if (flushing) await flushing;
    }
    bytes += key.length + record.value.length;
    if (record.lease && record.lease !== '0') leased++;
    if (summarise) byTopLevel.add(scope.topLevel(key));
    if (record.value.length > target.maxValueBytes) oversize.add(() => `${showKey(key)} (record ${index}, ${record.value.length} bytes)`);
    const why = target.refuse(key, record.value.length);
    if (why !== undefined) refused.add(() => `${showKey(key)} (record ${index}): ${why}`);
  }
  if (!ascending && deferred && orderedRecords > 0) {
    await spool.finish();
    let n = 0;
    for await (const earlier of spool.read()) {
      if (n++ === orderedRecords) break;
      keys.add(earlier.key);
      digest.add(earlier.key, earlier.value);
    }
  }
  const nothing = 'nothing was written';
  if (escaping.count > 0) {
    throw new IntegrityError(`${options.label}: ${escaping.count} keys would land outside the scope "${scope.scope.toString('utf8')}" (${escaping.list()}); ${nothing} — the artifact is damaged or hostile`);
  }
  if (keys.suspects.size > 0) {
    const duplicate = await confirmDuplicate(numbered(options.again, scope), keys.suspects, options.label);
    if (duplicate) {
      const { first, second } = duplicate;
      const merged = !first.original.equals(second.original);
      throw new IntegrityError(
        merged
          ? `${options.label}: keys ${showKey(first.original)} (record ${first.index}) and ${showKey(second.original)} (record ${second.index}) both become ${showKey(duplicate.key)} ` +
              `in ${target.description}, whose Portworx client merges repeated '/'; ${nothing} — remove one of them from the dump, or restore into etcd`
          : `${options.label}: key ${showKey(duplicate.key)} occurs twice (records ${first.index} and ${second.index}); ${nothing} — the artifact is damaged: which value is meant cannot be known`,
      );
    }
  }
  if (oversize.count > 0) {
    throw new UsageError(
      `${options.label}: ${target.description} holds values of at most ${target.maxValueBytes} bytes; ${oversize.count} to restore are larger (${oversize.list()}); ${nothing} — ` +
        'raise the target\'s limit (etcd --max-request-bytes, then maxRequestBytes in the source config; Consul kv_max_value_size, then maxValueBytes), restore into another target, or leave them out with --prefix',
    );
  }
  if (refused.count > 0) {
    throw new UsageError(`${options.label}: ${target.description} cannot hold ${refused.count} keys to restore as they are (${refused.list()}); ${nothing} — restore into another target, or leave them out with --prefix`);
  }
  await spool?.finish();
  splits.sort((a, b) => Buffer.compare(a, b));
  return {
    records: count,
    bytes,
    byTopLevel,
    skipped,
    leased,
    digest: ascending ? sequence.digest() : digest.digest(),
    splits: splits.filter((k, i) => i === 0 || !k.equals(splits[i - 1] as Buffer)),
    ascending,
  };
}

/** The scope-mapped keys of a fresh pass, numbered as the plan numbered them. */
async function* numbered(again: NumberedPass, scope: KeyScope): AsyncIterable<{ key: Buffer; index: number; original: Buffer }> {
  for await (const { key, index } of again()) {
    const mapped = scope.map(key);
    if (mapped) yield { key: mapped, index, original: key };
  }
}

/**
 * How fresh a Portworx KVDB dump is, read from its content — never from its file name, since a node's
 * clock can be wrong. Portworx's kvdb library sets KVDBIndex only where the backend gives one: dumps
 * taken from Consul carry the list's index as KVDBIndex on every pair; dumps taken from etcd carry
 * KVDBIndex 0 and each key's mod revision in ModifiedIndex. So the highest KVDBIndex decides when there
 * is one, else the highest ModifiedIndex.
 */
export interface DumpFreshness {
  signal: 'KVDBIndex' | 'ModifiedIndex';
  value: number;
}

/** A dump's highest indexes, gathered record by record. */
export class FreshnessScan {
  private kvdbIndex = 0;
  private modifiedIndex = 0;

  add(record: { kvdbIndex: number; modRevision?: number }): void {
    if (record.kvdbIndex > this.kvdbIndex) this.kvdbIndex = record.kvdbIndex;
    if ((record.modRevision ?? 0) > this.modifiedIndex) this.modifiedIndex = record.modRevision ?? 0;
  }

  get maxKvdbIndex(): number {
    return this.kvdbIndex;
  }

  get maxModifiedIndex(): number {
    return this.modifiedIndex;
  }

  freshness(): DumpFreshness {
    return freshnessOf(this.kvdbIndex, this.modifiedIndex);
  }
}

export function freshnessOf(maxKvdbIndex: number, maxModifiedIndex: number): DumpFreshness {
  return maxKvdbIndex > 0 ? { signal: 'KVDBIndex', value: maxKvdbIndex } : { signal: 'ModifiedIndex', value: maxModifiedIndex };
}

/** One dump among several: what it is called in messages, and what ranks it. */
export interface DumpCandidate<T> {
  item: T;
  /** e.g. the file name, or "<file> from <node>". */
  name: string;
  freshness: DumpFreshness;
  /** The time in its file name, if it has one: only ever a tie-breaker. */
  time?: Date;
}

export interface DumpRanking<T> {
  chosen: DumpCandidate<T>;
  /** The others, freshest first. */
  others: DumpCandidate<T>[];
  /** What decided, in words: "highest KVDBIndex 1125", "ModifiedIndex 88 ties with …; the later time in its name breaks the tie". */
  why: string;
}

/**
 * The freshest of several dumps (the one place the rule is written): the highest KVDBIndex or, for
 * dumps taken from etcd, ModifiedIndex; the time in the file name breaks an exact tie only.
 */
export function rankDumps<T>(candidates: readonly DumpCandidate<T>[]): DumpRanking<T> | undefined {
  const time = (c: DumpCandidate<T>): number => c.time?.getTime() ?? 0;
  const ordered = [...candidates].sort((a, b) => b.freshness.value - a.freshness.value || time(b) - time(a));
  const [chosen, ...others] = ordered;
  if (!chosen) return undefined;
  const runnerUp = others[0];
  const { signal, value } = chosen.freshness;
  const mixed = runnerUp && runnerUp.freshness.signal !== signal ? ` (${runnerUp.name} has ${runnerUp.freshness.signal} ${runnerUp.freshness.value}: dumps taken from etcd and from Consul compared)` : '';
  const why = !runnerUp
    ? `the only dump (highest ${signal} ${value})`
    : value > runnerUp.freshness.value
      ? `highest ${signal} ${value}${mixed}`
      : `${signal} ${value} ties with ${runnerUp.name}; the later time in its name breaks the tie`;
  return { chosen, others, why };
}

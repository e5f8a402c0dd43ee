/**
 * Shared shapes of the restore fuzz corpus (see mutations.ts): seeds, cases, what each case expects,
 * and the seeded PRNG that makes the corpus reproducible.
 */

export type Format = 'px-dump' | 'kvdr-export' | 'consul-export' | 'etcd-snapshot' | 'consul-snapshot';

/** One key as a target should hold it. PX dump keys are relative to pwx/<cluster>/, others whole. */
export interface Pair {
  key: Buffer;
  value: Buffer;
  flags: number;
}

/** A real artifact made from a real service (or a fixture), and what it holds. */
export interface Seed {
  name: string;
  format: Format;
  /** The artifact as produced: plain for every format except the Consul snapshot (its own tar.gz). */
  bytes: Buffer;
  pairs: Pair[];
}

/** Where a case's artifact comes from when the test materialises it. */
export type CaseContent =
  | { kind: 'bytes'; bytes: Buffer }
  /** Too big to hold in memory (200 MB lines, bombs): streamed to the path. */
  | { kind: 'stream'; bytes: number; write: (path: string) => Promise<void> }
  /** An existing path used as is: /dev/zero, /dev/null… */
  | { kind: 'path'; path: string }
  /** A directory holding these files (empty: an empty directory). */
  | { kind: 'dir'; files: Record<string, Buffer> }
  /** A named pipe nobody writes to. */
  | { kind: 'fifo' }
  | { kind: 'missing' };

/**
 * What the contract allows for a case:
 * - `fail`: a damaged or foreign artifact — exit 2 or 4 (3 only into a populated scope without --force), zero writes;
 * - `reference`: decode the mutated bytes independently (mutation-reference.ts): invalid means `fail`,
 *   valid means the command may fail as above or succeed leaving exactly the decoded pairs in the scope;
 * - `either`: as `reference`, with the pairs given;
 * - `succeed`: an undamaged seed — it must restore exactly these pairs.
 */
export type Expectation =
  | { kind: 'fail'; why: string }
  | { kind: 'reference' }
  | { kind: 'either'; pairs: Pair[] }
  | { kind: 'succeed'; pairs: Pair[] };

export interface FuzzCase {
  /** Short, unique, says what was done: `#017 px-new.gz flip@1234.3`. */
  name: string;
  /** The format the artifact was made from: decides the restore flags and the reference decoder. */
  format: Format;
  /** File name to give it (PX dumps keep the pwx_kvdb_<time>.dump form). */
  fileName: string;
  content: CaseContent;
  flag: '--file' | '--kvdb_dump_file';
  expect: Expectation;
  /** Paths that must not exist after the run (a tar entry climbing out of where it is unpacked). */
  mustNotExist?: string[];
  /** Big cases: run against one target only, to keep the run short. */
  targets?: ('etcd' | 'consul')[];
}

const FILE_NAMES: Record<Format, string> = {
  'px-dump': 'pwx_kvdb_2026-01-01T00:00:00Z.dump',
  'kvdr-export': 'export.ndjson',
  'consul-export': 'consul-export.json',
  'etcd-snapshot': 'etcd.db',
  'consul-snapshot': 'consul.snap',
};

export function fileNameFor(format: Format, gzip: boolean): string {
  return FILE_NAMES[format] + (gzip && format !== 'consul-snapshot' ? '.gz' : '');
}

/** mulberry32: small, fast, and the same sequence on every machine for a given seed. */
export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing');
    return items[this.int(items.length)] as T;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

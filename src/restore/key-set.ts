import { randomInt } from 'node:crypto';
import { IntegrityError } from '../util/errors.js';

/** Seeds of this process's fingerprints: random, so no artifact can be made to collide on purpose ahead of time. */
const SEED_A = randomInt(2 ** 32);
const SEED_B = randomInt(2 ** 32);

/**
 * Finds keys that occur twice in an artifact in bounded memory: 8 bytes a key, whatever the key's
 * length (a million keys: 16 MiB at the table's half load). It keeps a 64-bit fingerprint of each key
 * in an open-addressing table; a fingerprint seen twice makes the key a *suspect*, since two different
 * keys can share one (about 3e-8 at a million keys). `suspects` then lists those fingerprints, and a
 * second look at just those keys (`confirmDuplicate`) tells a real duplicate from a collision — so a
 * valid artifact is never refused on a hash, and a real duplicate is never missed.
 *
 * The fingerprint is two seeded 32-bit murmur3 hashes, computed in JavaScript: the plan pass runs it
 * for every record, and a sha256 per key would cost more than the rest of the pass.
 */
export class KeyFingerprints {
  private table = new Uint32Array(2 << 16);
  private used = 0;
  private readonly suspected = new Set<number>();

  /** Adds a key; true when its fingerprint was already there (a suspect). */
  add(key: Buffer): boolean {
    const a = murmur3(key, SEED_A) || 1; // 0 marks an empty slot
    const b = murmur3(key, SEED_B);
    if (this.insert(a, b)) return false;
    this.suspected.add(suspectId(a, b));
    return true;
  }

  /** Fingerprints seen more than once. */
  get suspects(): ReadonlySet<number> {
    return this.suspected;
  }

  private insert(a: number, b: number): boolean {
    if ((this.used + 1) * 4 > this.table.length) this.grow();
    const slots = this.table.length >>> 1;
    let slot = (a ^ Math.imul(b, 0x9e3779b1)) & (slots - 1);
    for (;;) {
      const heldA = this.table[2 * slot] as number;
      if (heldA === 0) {
        this.table[2 * slot] = a;
        this.table[2 * slot + 1] = b;
        this.used++;
        return true;
      }
      if (heldA === a && this.table[2 * slot + 1] === b) return false;
      slot = (slot + 1) & (slots - 1);
    }
  }

  private grow(): void {
    const old = this.table;
    this.table = new Uint32Array(old.length * 2);
    this.used = 0;
    for (let i = 0; i < old.length; i += 2) if (old[i] !== 0) this.insert(old[i] as number, old[i + 1] as number);
  }
}

/** A suspect's id: 53 bits of its fingerprint, exact in a JavaScript number. */
function suspectId(a: number, b: number): number {
  return a * 0x200000 + (b & 0x1fffff);
}

/** The fingerprint id a key has in this process (for the second look). */
export function fingerprintId(key: Buffer): number {
  return suspectId(murmur3(key, SEED_A) || 1, murmur3(key, SEED_B));
}

/** More suspects than this can only be a crafted artifact: refused rather than held in memory. */
const MAX_SUSPECT_KEYS = 100_000;

/** One occurrence of a key: its record number, and the key as the artifact wrote it (before the scope mapped it). */
export interface Occurrence {
  index: number;
  original: Buffer;
}

/**
 * The second look: of the keys whose fingerprint is a suspect, which really occur twice. Holds only the
 * suspects' keys. Returns the first real duplicate and both of its occurrences, or undefined.
 */
export async function confirmDuplicate(
  records: AsyncIterable<{ key: Buffer } & Occurrence>,
  suspects: ReadonlySet<number>,
  label: string,
): Promise<{ key: Buffer; first: Occurrence; second: Occurrence } | undefined> {
  const seen = new Map<string, Occurrence>();
  for await (const { key, index, original } of records) {
    if (!suspects.has(fingerprintId(key))) continue;
    const hex = key.toString('hex');
    const first = seen.get(hex);
    if (first !== undefined) return { key, first, second: { index, original } };
    if (seen.size >= MAX_SUSPECT_KEYS) throw new IntegrityError(`${label}: over ${MAX_SUSPECT_KEYS} keys share fingerprints, which no genuine artifact does; refused as hostile, nothing was written`);
    seen.set(hex, { index, original });
  }
  return undefined;
}

/** murmur3 (x86, 32-bit) of the key's bytes. */
function murmur3(key: Buffer, seed: number): number {
  let h = seed | 0;
  const n = key.length;
  const whole = n & ~3;
  for (let i = 0; i < whole; i += 4) {
    h ^= scramble((key[i] as number) | ((key[i + 1] as number) << 8) | ((key[i + 2] as number) << 16) | ((key[i + 3] as number) << 24));
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let tail = 0;
  if ((n & 3) >= 3) tail ^= (key[whole + 2] as number) << 16;
  if ((n & 3) >= 2) tail ^= (key[whole + 1] as number) << 8;
  if ((n & 3) >= 1) h ^= scramble(tail ^ (key[whole] as number));
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function scramble(k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  return Math.imul(k, 0x1b873593);
}

import { gunzipSync, gzipSync } from 'node:zlib';
import type { CaseContent, FuzzCase, Seed } from './fuzz-types.js';
import { fileNameFor, Rng } from './fuzz-types.js';
import { hostileCases, type HostileOptions } from './hostile-artifacts.js';
import { packSnapshot, snapshotMembers, type TarMember } from './tar-bytes.js';

/**
 * The restore fuzz corpus: deterministic mutations of real seed artifacts (seeded PRNG; the same
 * seed gives the same operators and offsets), plus the hand-made hostile artifacts of
 * hostile-artifacts.ts. Every case says what the contract allows (fuzz-types.ts, Expectation).
 */

export interface CorpusOptions extends HostileOptions {
  /** How many random mutations (spread evenly over formats and gzip/not). */
  count: number;
  seed: number;
  /** Run each random case against both targets (else one, alternating by index). */
  bothTargets: boolean;
}

interface Mutated {
  bytes: Buffer;
  tag: string;
}

/** Where damage is most telling: header blocks, meta pages, trailers. */
type Hotspots = [number, number][];

function pickOffset(rng: Rng, length: number, hotspots: Hotspots = []): number {
  if (length <= 1) return 0;
  const r = rng.next();
  if (r < 0.3 && hotspots.length > 0) {
    const [start, end] = rng.pick(hotspots);
    return Math.min(length - 1, start + rng.int(Math.max(1, end - start)));
  }
  if (r < 0.6) return rng.int(length);
  if (r < 0.85) return rng.int(Math.min(length, 4096));
  return length - 1 - rng.int(Math.min(length, 64));
}

/** A random byte-level mutation: flips, truncation, garbage, splices with another artifact. */
export function byteMutation(rng: Rng, input: Buffer, others: { name: string; bytes: Buffer }[], hotspots: Hotspots = []): Mutated {
  const b = Buffer.from(input);
  const at = pickOffset(rng, b.length, hotspots);
  const r = rng.next();
  if (r < 0.25) {
    const bit = rng.int(8);
    b[at] = (b[at] as number) ^ (1 << bit);
    return { bytes: b, tag: `flip@${at}.${bit}` };
  }
  if (r < 0.35) {
    const k = rng.range(2, 8);
    for (let i = 0; i < k; i++) {
      const o = i === 0 ? at : pickOffset(rng, b.length, hotspots);
      b[o] = (b[o] as number) ^ (1 << rng.int(8));
    }
    return { bytes: b, tag: `flips${k}@${at}` };
  }
  if (r < 0.5) return { bytes: b.subarray(0, at), tag: `trunc@${at}` };
  if (r < 0.58) {
    const v = rng.int(256);
    b[at] = v;
    return { bytes: b, tag: `byte@${at}=${v.toString(16)}` };
  }
  if (r < 0.63) {
    const n = rng.range(1, 64);
    b.fill(0, at, Math.min(b.length, at + n));
    return { bytes: b, tag: `zero@${at}+${n}` };
  }
  if (r < 0.7) {
    const n = rng.range(1, 256);
    return { bytes: Buffer.concat([b.subarray(0, at), b.subarray(at + n)]), tag: `del@${at}+${n}` };
  }
  if (r < 0.75) {
    const n = rng.range(1, 256);
    return { bytes: Buffer.concat([b.subarray(0, at + n), b.subarray(at, at + n), b.subarray(at + n)]), tag: `dup@${at}+${n}` };
  }
  if (r < 0.8) {
    const n = rng.range(1, 32);
    return { bytes: Buffer.concat([b.subarray(0, at), rng.bytes(n), b.subarray(at)]), tag: `ins@${at}+${n}` };
  }
  if (r < 0.9) {
    const kind = rng.int(4);
    const n = rng.range(1, 512);
    const tail = [rng.bytes(Math.min(n, 64)), Buffer.alloc(n), Buffer.from('\n{"key":"x","value":""}\n'), b.subarray(0, n)][kind] as Buffer;
    return { bytes: Buffer.concat([b, tail]), tag: `tail:${['rand', 'nul', 'json', 'head'][kind]}+${tail.length}` };
  }
  const other = rng.pick(others);
  const from = pickOffset(rng, other.bytes.length);
  return { bytes: Buffer.concat([b.subarray(0, at), other.bytes.subarray(from)]), tag: `splice(${other.name}@${from})@${at}` };
}

/** gzip-specific damage to a gzip stream: header fields, CRC, ISIZE, extra members. */
function gzipMutation(rng: Rng, gz: Buffer, others: { name: string; bytes: Buffer }[]): Mutated {
  const b = Buffer.from(gz);
  const r = rng.next();
  if (r < 0.12) {
    const at = 4 + rng.int(4);
    b[at] = (b[at] as number) ^ (1 << rng.int(8));
    return { bytes: b, tag: `gz-mtime@${at}` }; // harmless: same content
  }
  if (r < 0.18) {
    b[9] = rng.int(256);
    return { bytes: b, tag: `gz-os=${b[9]}` }; // harmless
  }
  if (r < 0.26) {
    const bit = rng.int(8);
    b[3] = (b[3] as number) ^ (1 << bit);
    return { bytes: b, tag: `gz-flg.${bit}` };
  }
  if (r < 0.34) {
    const at = b.length - 8 + rng.int(4);
    b[at] = (b[at] as number) ^ (1 << rng.int(8));
    return { bytes: b, tag: `gz-crc@${at}` };
  }
  if (r < 0.4) {
    const at = b.length - 4 + rng.int(4);
    b[at] = (b[at] as number) ^ (1 << rng.int(8));
    return { bytes: b, tag: `gz-isize@${at}` };
  }
  if (r < 0.46) return { bytes: Buffer.concat([b, gzipSync(Buffer.alloc(0))]), tag: 'gz+empty-member' }; // harmless
  if (r < 0.52) return { bytes: Buffer.concat([b, gzipSync(rng.bytes(rng.range(1, 64)))]), tag: 'gz+garbage-member' };
  return byteMutation(rng, gz, others, [[0, 10], [gz.length - 8, gz.length]]);
}

/** Damage that keeps JSON text well-formed: what only a careful reader (or a checksum) catches. */
function jsonMutation(rng: Rng, format: 'px-dump' | 'consul-export', plain: Buffer): Mutated {
  const array = JSON.parse(plain.toString('utf8')) as Record<string, unknown>[];
  const keyField = format === 'px-dump' ? 'Key' : 'key';
  const valueField = format === 'px-dump' ? 'Value' : 'value';
  const serialise = (a: unknown[]): Buffer => Buffer.from(format === 'px-dump' ? JSON.stringify(a) : JSON.stringify(a, null, '\t'));
  const i = rng.int(array.length);
  const element = array[i] as Record<string, unknown>;
  const r = rng.next();
  if (r < 0.35) {
    // One bit inside a base64 value, in place: often still base64 — a different but valid artifact.
    const value = element[valueField];
    if (typeof value === 'string' && value.length > 0) {
      const at = plain.indexOf(`"${value}"`) + 1 + rng.int(value.length);
      const b = Buffer.from(plain);
      const bit = rng.int(7);
      b[at] = (b[at] as number) ^ (1 << bit);
      return { bytes: b, tag: `b64flip#${i}@${at}.${bit}` };
    }
  }
  if (r < 0.45) return { bytes: serialise(array.filter((_, j) => j !== i)), tag: `drop#${i}` };
  if (r < 0.55) {
    const j = (i + 1 + rng.int(array.length - 1)) % array.length;
    element[keyField] = (array[j] as Record<string, unknown>)[keyField];
    return { bytes: serialise(array), tag: `dupkey#${i}=#${j}` };
  }
  if (r < 0.62) {
    element[valueField] = null;
    return { bytes: serialise(array), tag: `null-value#${i}` };
  }
  if (r < 0.69) {
    delete element[valueField];
    return { bytes: serialise(array), tag: `no-value#${i}` };
  }
  if (r < 0.76) {
    element[keyField] = format === 'px-dump' ? '../../escaped' : 'seed/../../escaped';
    return { bytes: serialise(array), tag: `escape-key#${i}` };
  }
  if (r < 0.83) {
    const renamed = Object.fromEntries(Object.entries(element).map(([k, v]) => [k === keyField ? keyField.toUpperCase() : k, v]));
    array[i] = renamed;
    return { bytes: serialise(array), tag: `key-case#${i}` };
  }
  if (r < 0.9) {
    delete element[keyField];
    return { bytes: serialise(array), tag: `no-key#${i}` };
  }
  return { bytes: serialise(array.slice(0, i)), tag: `cut-after#${i}` };
}

/** NDJSON damage to a kvdr export that keeps every line valid JSON: the checksum must catch it. */
function ndjsonMutation(rng: Rng, plain: Buffer): Mutated {
  const lines = plain.toString('utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const r = rng.next();
  const join = (l: string[]): Buffer => Buffer.from(`${l.join('\n')}\n`);
  if (r < 0.3) return { bytes: join(lines.slice(0, -1)), tag: 'no-trailer' };
  const i = 1 + rng.int(Math.max(1, lines.length - 2));
  if (r < 0.6) return { bytes: join(lines.filter((_, j) => j !== i)), tag: `drop-line#${i}` };
  if (r < 0.8) {
    const copy = [...lines];
    const j = 1 + rng.int(Math.max(1, lines.length - 2));
    [copy[i], copy[j]] = [copy[j] as string, copy[i] as string];
    return { bytes: join(copy), tag: `swap-lines#${i},${j}` };
  }
  const record = JSON.parse(lines[i] as string) as { value?: string };
  if (typeof record.value === 'string') record.value = Buffer.from(`changed ${i}`).toString('base64');
  const copy = [...lines];
  copy[i] = JSON.stringify(record);
  return { bytes: join(copy), tag: `rewrite-value#${i}` };
}

type Combo = { seed: Seed; level: 'plain' | 'gz' | 'snap-outer' | 'snap-tar' | 'snap-member' | 'snap-resum' };

function combos(seeds: Seed[]): Combo[] {
  return seeds.flatMap((seed): Combo[] =>
    seed.format === 'consul-snapshot'
      ? (['snap-outer', 'snap-tar', 'snap-member', 'snap-resum'] as const).map((level) => ({ seed, level }))
      : (['plain', 'gz'] as const).map((level) => ({ seed, level })),
  );
}

function hotspotsFor(seed: Seed, plain: Buffer): Hotspots {
  if (seed.format === 'etcd-snapshot') return [[0, 8192], [plain.length - 32, plain.length]];
  return [];
}

/** One random case from a seed at a level (plain, gzip, or a layer of a Consul snapshot). */
function randomCase(rng: Rng, index: number, combo: Combo, seeds: Seed[], bothTargets: boolean): FuzzCase {
  const { seed, level } = combo;
  const others = seeds.filter((s) => s !== seed).map((s) => ({ name: s.name, bytes: s.bytes }));
  const textual = seed.format === 'px-dump' || seed.format === 'consul-export';
  const inner = (plain: Buffer): Mutated => {
    if (textual && rng.chance(0.3)) return jsonMutation(rng, seed.format as 'px-dump' | 'consul-export', plain);
    if (seed.format === 'kvdr-export' && rng.chance(0.25)) return ndjsonMutation(rng, plain);
    return byteMutation(rng, plain, others, hotspotsFor(seed, plain));
  };
  let m: Mutated;
  let label = seed.name;
  switch (level) {
    case 'plain':
      m = inner(seed.bytes);
      break;
    case 'gz':
      label += '.gz';
      if (rng.chance(0.5)) {
        const i = inner(seed.bytes);
        m = { bytes: gzipSync(i.bytes), tag: `gz(${i.tag})` };
      } else {
        const g = gzipMutation(rng, gzipSync(seed.bytes), others);
        m = { bytes: g.bytes, tag: `gz!${g.tag}` };
      }
      break;
    case 'snap-outer':
      m = gzipMutation(rng, seed.bytes, others);
      break;
    case 'snap-tar': {
      const tar = gunzipSync(seed.bytes);
      const headers: Hotspots = [];
      for (let at = 0, members = 0; at < tar.length && members < 3; members++) {
        headers.push([at, at + 512]);
        const size = parseInt(tar.subarray(at + 124, at + 136).toString('latin1').replace(/[\0 ]/g, '') || '0', 8);
        at += 512 + Math.ceil(size / 512) * 512;
      }
      const t = byteMutation(rng, tar, others, headers);
      m = { bytes: gzipSync(t.bytes), tag: `tar!${t.tag}` };
      break;
    }
    case 'snap-member':
    case 'snap-resum': {
      const members = snapshotMembers(seed.bytes);
      const name = level === 'snap-resum' ? 'state.bin' : rng.chance(0.7) ? 'state.bin' : rng.pick(['meta.json', 'SHA256SUMS']);
      const target = members.find((x) => x.name === name) as TarMember;
      const t = byteMutation(rng, target.body, others.filter((o) => o.name !== 'consul-snap'), [[0, 64]]);
      const changed = members.map((x) => (x === target ? { ...x, body: t.bytes } : x));
      m = { bytes: packSnapshot(changed, level === 'snap-resum'), tag: `${level === 'snap-resum' ? 'resum' : 'member'}:${name}!${t.tag}` };
      break;
    }
  }
  const gzip = level === 'gz';
  const flag = seed.format === 'px-dump' && rng.chance(0.5) ? '--kvdb_dump_file' : '--file';
  return {
    name: `#${String(index).padStart(3, '0')} ${label} ${m.tag}`,
    format: seed.format,
    fileName: fileNameFor(seed.format, gzip),
    content: { kind: 'bytes', bytes: m.bytes },
    flag,
    expect: { kind: 'reference' },
    ...(bothTargets ? {} : { targets: [(index >> 1) % 2 === 0 ? 'etcd' : 'consul'] as const }),
  };
}

/** Each seed as it is, plain and gzipped: these must restore. */
function seedCases(seeds: Seed[]): FuzzCase[] {
  const out: FuzzCase[] = [];
  for (const seed of seeds) {
    const variants: [string, Buffer, boolean][] =
      seed.format === 'consul-snapshot'
        ? [[seed.name, seed.bytes, false], [`${seed.name} repacked`, packSnapshot(snapshotMembers(seed.bytes), false), false]]
        : [[seed.name, seed.bytes, false], [`${seed.name}.gz`, gzipSync(seed.bytes), true]];
    for (const [label, bytes, gzip] of variants) {
      const content: CaseContent = { kind: 'bytes', bytes };
      const base = { format: seed.format, fileName: fileNameFor(seed.format, gzip), content, expect: { kind: 'succeed' as const, pairs: seed.pairs } };
      out.push({ ...base, name: `seed ${label}`, flag: '--file' });
      if (seed.format === 'px-dump') out.push({ ...base, name: `seed ${label} (--kvdb_dump_file)`, flag: '--kvdb_dump_file' });
    }
  }
  return out;
}

/** The whole corpus: the seeds themselves, `count` random mutations, and the hostile set. */
export function buildCorpus(seeds: Seed[], options: CorpusOptions): FuzzCase[] {
  const rng = new Rng(options.seed);
  const all = combos(seeds);
  const random = Array.from({ length: options.count }, (_, i) => randomCase(rng, i, all[i % all.length] as Combo, seeds, options.bothTargets));
  return [...seedCases(seeds), ...random, ...hostileCases(seeds, options)];
}

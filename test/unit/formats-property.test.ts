import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { consulExportWriter } from '../../src/formats/consul-export.js';
import { readConsulExport } from '../../src/formats/consul-export-reader.js';
import { readConsulSnapshotKv } from '../../src/formats/consul-state-reader.js';
import { DEFAULT_MAX_INFLATED_BYTES, inflate } from '../../src/formats/inflate.js';
import { EXPORT_VERSION, exportWriter, type ExportHeader } from '../../src/formats/kvdr-export.js';
import { readKvdrExport } from '../../src/formats/kvdr-export-reader.js';
import { readPxDump } from '../../src/formats/px-dump.js';
import type { KvRecord } from '../../src/formats/record.js';
import { KvdrError } from '../../src/util/errors.js';
import { readAll } from '../../src/util/streams.js';
import { chunked, collect, settles, snapshotTar, stateBin, type SnapshotKv } from './formats-fixtures.js';
import { referenceConsulExport, referenceConsulSnapshot, referenceKvdrExport, referencePxDump, type RefRecord } from './formats-reference.js';

/**
 * Property tests for every format kvdr writes or reads, except the etcd snapshot (a round trip needs
 * a bbolt writer, which kvdr does not have): arbitrary keys and values round-trip, and any truncation,
 * bit flip or splice of a valid artifact either reads back what the reference decoder (formats-
 * reference.ts) reads, or fails with a KvdrError — never another error, never a hang.
 * KVDR_PROPERTY_RUNS sets the runs per property (default 200; the nightly profile uses 10000).
 */
const RUNS = Number(process.env['KVDR_PROPERTY_RUNS'] ?? 200);
const TIMEOUT = 60_000 + RUNS * 100;
const LABEL = 'artifact';

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Deterministic bytes from a seed: fast-check would generate a large array a byte at a time. */
function seededBytes(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

const bytesArb: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 10, arbitrary: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)) },
  { weight: 2, arbitrary: fc.constantFrom(Buffer.alloc(0), Buffer.from([0]), Buffer.from([0xff, 0xfe]), Buffer.from('{"json":"inside"}\n')) },
  { weight: 1, arbitrary: fc.record({ length: fc.integer({ min: 1000, max: 150_000 }), seed: fc.integer() }).map(({ length, seed }) => seededBytes(length, seed)) },
);

const textArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 24 }) },
  { weight: 1, arbitrary: fc.constantFrom('', 'a<b>&c', '\u2028\u2029', 'ünïcödé/ключ', '😀/🚀', '"quoted"\\back', 'tab\tnew\nline\u0000nul') },
);

const chunkArb = fc.constantFrom(1, 3, 64, 1000, 65_536);
const byKey = (a: { key: Buffer }, b: { key: Buffer }): number => Buffer.compare(a.key, b.key);

interface Mutation {
  kind: 'truncate' | 'flip' | 'splice' | 'insert' | 'duplicate' | 'delete' | 'cross';
  a: number;
  b: number;
  bit: number;
  bytes: Uint8Array;
}

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('truncate', 'flip', 'flip', 'splice', 'insert', 'duplicate', 'delete', 'cross'),
  a: fc.nat(),
  b: fc.nat(),
  bit: fc.integer({ min: 0, max: 7 }),
  bytes: fc.oneof(fc.uint8Array({ maxLength: 12 }), fc.constantFrom(Uint8Array.from(Buffer.from('"')), Uint8Array.from(Buffer.from('\n')), Uint8Array.from(Buffer.from('},{')))),
});

/** Applies a mutation; `other` is a second valid artifact of the same format, for cross-splices. */
function mutate(buffer: Buffer, m: Mutation, other: Buffer): Buffer {
  const at = (n: number): number => n % (buffer.length + 1);
  const [lo, hi] = [Math.min(at(m.a), at(m.b)), Math.max(at(m.a), at(m.b))];
  switch (m.kind) {
    case 'truncate':
      return buffer.subarray(0, at(m.a));
    case 'flip': {
      if (buffer.length === 0) return Buffer.from(m.bytes);
      const copy = Buffer.from(buffer);
      copy[m.a % copy.length] = (copy[m.a % copy.length] as number) ^ (1 << m.bit);
      return copy;
    }
    case 'splice':
      return Buffer.concat([buffer.subarray(0, lo), m.bytes, buffer.subarray(hi)]);
    case 'insert':
      return Buffer.concat([buffer.subarray(0, lo), m.bytes, buffer.subarray(lo)]);
    case 'duplicate':
      return Buffer.concat([buffer.subarray(0, hi), buffer.subarray(lo, hi), buffer.subarray(hi)]);
    case 'delete':
      return Buffer.concat([buffer.subarray(0, lo), buffer.subarray(hi)]);
    case 'cross':
      return Buffer.concat([buffer.subarray(0, lo), other.subarray(m.b % (other.length + 1))]);
  }
}

// ---------------------------------------------------------------------------------------------
// Reading through the production path: capped inflate, then the streaming reader

/** Small chunks find boundary bugs; a few hundred per artifact are enough, and keep the runs fast. */
const pieces = (bytes: Buffer, chunk: number): Readable => chunked(bytes, Math.max(chunk, Math.ceil(bytes.length / 200)));

const through = (bytes: Buffer, gzip: boolean, chunk: number): Readable => inflate(pieces(bytes, chunk), { gzip, maxBytes: DEFAULT_MAX_INFLATED_BYTES, label: LABEL });

const plain = (records: KvRecord[]): RefRecord[] => records.map((r) => ({ key: r.key, value: r.value }));

/**
 * Records with their bytes as base64 text: toEqual walks a Buffer one index at a time, which made
 * comparing 150 KB values the slowest part of a run; strings compare at once.
 */
const shown = <T extends { key: Buffer; value: Buffer }>(records: T[]): (Omit<T, 'key' | 'value'> & { key: string; value: string })[] =>
  records.map((r) => ({ ...r, key: r.key.toString('base64'), value: r.value.toString('base64') }));

const explain = (err: unknown): string => (err instanceof Error ? (err.stack ?? err.message) : JSON.stringify(err));

/** Reads, settles, and either agrees with the reference or fails with a KvdrError. */
async function agreesOrRefuses(read: () => Promise<RefRecord[]>, reference: () => RefRecord[], what: string): Promise<void> {
  const outcome = await settles(read(), 20_000).then(
    (records) => ({ records }),
    (error: unknown) => ({ error }),
  );
  if ('error' in outcome) {
    if (!(outcome.error instanceof KvdrError)) throw new Error(`${what}: failed with a non-Kvdr error: ${explain(outcome.error)}`);
    expect(outcome.error.message, what).not.toMatch(/\n/);
    return;
  }
  let expected: RefRecord[];
  try {
    expected = reference();
  } catch (err) {
    throw new Error(`${what}: the reader accepted an artifact the reference refuses (${(err as Error).message})`);
  }
  expect(shown(outcome.records), what).toEqual(shown(expected));
}

// ---------------------------------------------------------------------------------------------
// PX dumps, written as Go's json.Marshal writes []*kvdb.KVPair

interface PxPair {
  key: string;
  value: Buffer | null;
  kvdbIndex: number;
  created: number;
  modified: number;
}

const pxPairArb: fc.Arbitrary<PxPair> = fc.record({
  key: textArb,
  value: fc.option(bytesArb, { freq: 5 }),
  kvdbIndex: fc.nat(),
  created: fc.nat(),
  modified: fc.nat(),
});

/** Go escapes <, > and & (HTML-safe) and U+2028/2029 in strings; JSON.stringify does the rest the same way. */
const goString = (s: string): string => JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

function pxDump(pairs: PxPair[], nilSlice: boolean): Buffer {
  if (pairs.length === 0 && nilSlice) return Buffer.from('null');
  const items = pairs.map(
    (p) =>
      `{"Key":${goString(p.key)},"Value":${p.value === null ? 'null' : `"${p.value.toString('base64')}"`},"Action":0,"TTL":0,` +
      `"KVDBIndex":${p.kvdbIndex},"CreatedIndex":${p.created},"ModifiedIndex":${p.modified},"Lock":null}`,
  );
  return Buffer.from(`[${items.join(',')}]`);
}

const pxDumpArb = fc.record({ pairs: fc.array(pxPairArb, { maxLength: 12 }), nil: fc.boolean() }).map(({ pairs, nil }) => ({ pairs, bytes: pxDump(pairs, nil) }));

const readPx = async (bytes: Buffer, gzip: boolean, chunk: number): Promise<RefRecord[]> => plain(await collect(readPxDump(through(bytes, gzip, chunk), LABEL)));

// ---------------------------------------------------------------------------------------------
// kvdr exports, written by kvdr's writer

const exportArb = fc
  .record({
    prefix: fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)),
    revision: fc.nat(),
    clusterId: fc.option(textArb),
    pages: fc.boolean(),
    records: fc.uniqueArray(
      fc.record({
        suffix: fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a)),
        value: bytesArb,
        lease: fc.oneof(fc.constant('0'), fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(String)),
        createRevision: fc.nat(),
        modRevision: fc.nat(),
        version: fc.nat(),
      }),
      { selector: (r) => r.suffix.toString('hex'), maxLength: 12 },
    ),
  })
  .map(({ prefix, revision, clusterId, pages, records }) => {
    const full: KvRecord[] = records.map(({ suffix, ...rest }) => ({ key: Buffer.concat([prefix, suffix]), ...rest })).sort(byKey);
    const header: ExportHeader = {
      format: 'kvdr-export',
      version: EXPORT_VERSION,
      source: { type: 'etcd', ...(clusterId !== null ? { clusterId } : {}) },
      prefix: prefix.toString('base64'),
      revision,
      createdAt: '2026-02-03T04:05:06.789Z',
    };
    return { header, records: full, pages };
  });

async function writeExport(e: { header: ExportHeader; records: KvRecord[]; pages: boolean }): Promise<Buffer> {
  const input = e.pages ? [e.records.slice(0, 3), e.records.slice(3)] : e.records;
  return readAll(Readable.from(input).pipe(exportWriter(() => e.header)));
}

async function readExport(bytes: Buffer, gzip: boolean, chunk: number): Promise<{ header: ExportHeader; covered: boolean; records: KvRecord[] }> {
  const reader = readKvdrExport(through(bytes, gzip, chunk), LABEL);
  const records = await collect(reader.records);
  return { header: await reader.header(), covered: await reader.headerCovered(), records };
}

// ---------------------------------------------------------------------------------------------
// consul kv exports, written by kvdr's writer

const consulExportArb = fc
  .uniqueArray(fc.record({ key: textArb, value: bytesArb, flags: fc.nat() }), { selector: (e) => e.key, maxLength: 12 })
  .map((entries) => entries.map((e) => ({ key: Buffer.from(e.key, 'utf8'), value: e.value, flags: e.flags })).sort(byKey));

const writeConsulExport = (records: KvRecord[]): Promise<Buffer> => readAll(Readable.from(records).pipe(consulExportWriter()));

const readExportJson = async (bytes: Buffer, gzip: boolean, chunk: number): Promise<RefRecord[]> => plain(await collect(readConsulExport(through(bytes, gzip, chunk), LABEL)));

// ---------------------------------------------------------------------------------------------
// Consul snapshots, built as Consul writes them (always gzip: the format is a tar.gz)

const snapshotArb = fc
  .record({
    kvs: fc.array(
      fc.record({
        key: fc.uint8Array({ maxLength: 32 }).map((a) => Buffer.from(a)),
        value: bytesArb,
        flags: fc.nat(),
        createIndex: fc.nat(),
        modifyIndex: fc.nat(),
      }),
      { maxLength: 12 },
    ),
    others: fc.boolean(),
    lastIndex: fc.nat(),
  })
  .map(({ kvs, others, lastIndex }) => ({ kvs: kvs, state: stateBin(kvs, { others: others || kvs.length === 0, lastIndex }) }));

const readSnapshot = async (bytes: Buffer, chunk: number): Promise<RefRecord[]> =>
  plain(await collect(readConsulSnapshotKv(pieces(bytes, chunk), LABEL)));

// ---------------------------------------------------------------------------------------------

const gz = (bytes: Buffer, gzip: boolean): Buffer => (gzip ? gzipSync(bytes, { level: 1 }) : bytes);
const params = { numRuns: RUNS };

describe(`formats: round trips (${RUNS} runs each)`, () => {
  it(
    'px dump: what Go would marshal reads back, gzipped or not',
    async () => {
      await fc.assert(
        fc.asyncProperty(pxDumpArb, fc.boolean(), chunkArb, async ({ pairs, bytes }, gzip, chunk) => {
          const records = await readPx(gz(bytes, gzip), gzip, chunk);
          expect(shown(records)).toEqual(shown(pairs.map((p) => ({ key: Buffer.from(p.key, 'utf8'), value: p.value ?? Buffer.alloc(0) }))));
        }),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    'kvdr export: writer → reader, header covered',
    async () => {
      await fc.assert(
        fc.asyncProperty(exportArb, fc.boolean(), chunkArb, async (e, gzip, chunk) => {
          const got = await readExport(gz(await writeExport(e), gzip), gzip, chunk);
          expect(got.header).toEqual(e.header);
          expect(got.covered).toBe(true);
          expect(shown(got.records)).toEqual(shown(e.records));
        }),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    'consul kv export: writer → reader',
    async () => {
      await fc.assert(
        fc.asyncProperty(consulExportArb, fc.boolean(), chunkArb, async (records, gzip, chunk) => {
          const bytes = await writeConsulExport(records);
          expect(shown(await collect(readConsulExport(through(gz(bytes, gzip), gzip, chunk), LABEL)))).toEqual(shown(records));
        }),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    'consul snapshot: built as Consul writes it → reader',
    async () => {
      await fc.assert(
        fc.asyncProperty(snapshotArb, chunkArb, async ({ kvs, state }, chunk) => {
          let meta: unknown;
          const records = await collect(readConsulSnapshotKv(pieces(gzipSync(snapshotTar(state)), chunk), LABEL, (m) => (meta = m)));
          expect(shown(records)).toEqual(shown(kvs.map((kv) => ({ key: kv.key, value: kv.value, flags: kv.flags, createRevision: kv.createIndex, modRevision: kv.modifyIndex }))));
          expect(meta).toMatchObject({ Version: 1 });
        }),
        params,
      );
    },
    TIMEOUT,
  );
});

describe(`formats: damaged artifacts read as the reference does or fail with a KvdrError (${RUNS} runs each)`, () => {
  it(
    'px dump',
    async () => {
      await fc.assert(
        fc.asyncProperty(pxDumpArb, pxDumpArb, mutationArb, fc.boolean(), fc.boolean(), chunkArb, async (a, b, m, gzip, outer, chunk) => {
          // Damage to the JSON (then gzipped), or to the gzip itself.
          const bytes = gzip && outer ? mutate(gz(a.bytes, true), m, gz(b.bytes, true)) : gz(mutate(a.bytes, m, b.bytes), gzip);
          await agreesOrRefuses(() => readPx(bytes, gzip, chunk), () => referencePxDump(bytes, gzip), `${m.kind} (gzip ${gzip}, outer ${outer})`);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    'kvdr export',
    async () => {
      await fc.assert(
        fc.asyncProperty(exportArb, exportArb, mutationArb, fc.boolean(), fc.boolean(), chunkArb, async (a, b, m, gzip, outer, chunk) => {
          const [good, other] = [await writeExport(a), await writeExport(b)];
          const bytes = gzip && outer ? mutate(gz(good, true), m, gz(other, true)) : gz(mutate(good, m, other), gzip);
          await agreesOrRefuses(async () => plain((await readExport(bytes, gzip, chunk)).records), () => referenceKvdrExport(bytes, gzip), `${m.kind} (gzip ${gzip}, outer ${outer})`);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    'consul kv export',
    async () => {
      await fc.assert(
        fc.asyncProperty(consulExportArb, consulExportArb, mutationArb, fc.boolean(), fc.boolean(), chunkArb, async (a, b, m, gzip, outer, chunk) => {
          const [good, other] = [await writeConsulExport(a), await writeConsulExport(b)];
          const bytes = gzip && outer ? mutate(gz(good, true), m, gz(other, true)) : gz(mutate(good, m, other), gzip);
          await agreesOrRefuses(() => readExportJson(bytes, gzip, chunk), () => referenceConsulExport(bytes, gzip), `${m.kind} (gzip ${gzip}, outer ${outer})`);
        }),
        params,
      );
    },
    TIMEOUT,
  );

  it(
    'consul snapshot: damage to the gzip, to the tar inside, or to state.bin with SHA256SUMS rewritten to match',
    async () => {
      await fc.assert(
        fc.asyncProperty(snapshotArb, snapshotArb, mutationArb, fc.constantFrom('gzip', 'tar', 'state'), chunkArb, async (a, b, m, layer, chunk) => {
          const [tarA, tarB] = [snapshotTar(a.state), snapshotTar(b.state)];
          const bytes =
            layer === 'gzip'
              ? mutate(gzipSync(tarA), m, gzipSync(tarB))
              : layer === 'tar'
                ? gzipSync(mutate(tarA, m, tarB))
                : gzipSync(snapshotTar(mutate(a.state, m, b.state)));
          await agreesOrRefuses(() => readSnapshot(bytes, chunk), () => referenceConsulSnapshot(bytes), `${m.kind} of the ${layer}`);
        }),
        params,
      );
    },
    TIMEOUT,
  );
});

describe(`formats: arbitrary bytes (${RUNS} runs)`, () => {
  it(
    'every reader settles with records or a KvdrError, whatever the bytes',
    async () => {
      const prefixes = ['', '[', '[{"Key":', '[{"key":', '{"format":"kvdr-export","version":2,"prefix":"","revision":1}\n', '\x1f\x8b'];
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...prefixes), fc.uint8Array({ maxLength: 600 }), fc.boolean(), chunkArb, async (prefix, tail, gzip, chunk) => {
          const bytes = Buffer.concat([Buffer.from(prefix, 'latin1'), tail]);
          const readers: [string, () => Promise<unknown>][] = [
            ['px dump', () => readPx(bytes, gzip, chunk)],
            ['consul kv export', () => readExportJson(bytes, gzip, chunk)],
            ['kvdr export', () => readExport(bytes, gzip, chunk)],
            ['consul snapshot', () => readSnapshot(bytes, chunk)],
          ];
          for (const [what, read] of readers) {
            const error = await settles(read(), 20_000).then(
              () => undefined,
              (err: unknown) => err,
            );
            if (error !== undefined && !(error instanceof KvdrError)) throw new Error(`${what}: failed with a non-Kvdr error: ${explain(error)}`);
          }
        }),
        params,
      );
    },
    TIMEOUT,
  );
});

describe('formats: the reference decoders agree with the writers', () => {
  it('on one artifact of each kind', async () => {
    const [e] = fc.sample(exportArb, { numRuns: 1, seed: 7 });
    const written = await writeExport(e as Parameters<typeof writeExport>[0]);
    expect(referenceKvdrExport(written, false)).toEqual(plain((e as { records: KvRecord[] }).records));
    const [s] = fc.sample(snapshotArb, { numRuns: 1, seed: 7 });
    expect(referenceConsulSnapshot(gzipSync(snapshotTar((s as { state: Buffer }).state))).length).toBe((s as { kvs: SnapshotKv[] }).kvs.length);
  });
});

import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { BboltFile, dbOf, PAGE_BRANCH, resumMetas, withTrailer } from './bbolt-bytes.js';
import type { CaseContent, Expectation, FuzzCase, Format, Seed } from './fuzz-types.js';
import { fileNameFor } from './fuzz-types.js';
import { decodeAt, encodeValue } from './msgpack-walk.js';
import { packSnapshot, paxEntry, snapshotMembers, tarArchive, tarEntry, type TarMember } from './tar-bytes.js';

/**
 * The hand-made hostile artifacts of the restore fuzz corpus: devices and directories, decompression
 * bombs, 200 MB lines, deep nesting, tar entries that climb out or link elsewhere or declare absurd
 * sizes, and bbolt and msgpack structures (with their checksums recomputed, so only the structure is
 * wrong) that point anywhere.
 */

export interface HostileOptions {
  /** Unique per run: names the files a traversal entry would create, so their absence can be checked. */
  tag: string;
  /** Directories where an escaping entry could land (the case's cwd parent, the temp dir, /). */
  escapeRoots: string[];
  /** Include the cases that write hundreds of MB or inflate to GBs. */
  big: boolean;
  /** Include a named pipe nobody writes to (a hang costs the full timeout). */
  fifo: boolean;
}

const MiB = 1024 * 1024;
const fail = (why: string): Expectation => ({ kind: 'fail', why });
const reference: Expectation = { kind: 'reference' };

type Part = Buffer | { chunk: () => Buffer; times: number };

/** Writes parts to a file with back-pressure: how big cases reach the disk without being in memory. */
async function writeParts(path: string, parts: Part[]): Promise<void> {
  const out = createWriteStream(path);
  for (const part of parts) {
    const chunk = Buffer.isBuffer(part) ? part : part.chunk();
    const times = Buffer.isBuffer(part) ? 1 : part.times;
    for (let i = 0; i < times; i++) if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await finished(out);
}

const memo = new Map<string, Buffer>();
/** gzip of 64 MiB of one byte, made once: repeated as gzip members it inflates to GBs. */
function gzChunk(byte: number): () => Buffer {
  return () => {
    const key = `gz-${byte}`;
    if (!memo.has(key)) memo.set(key, gzipSync(Buffer.alloc(64 * MiB, byte), { level: 9 }));
    return memo.get(key) as Buffer;
  };
}
const plainChunk = (byte: number): (() => Buffer) => () => Buffer.alloc(MiB, byte);

function stream(parts: Part[], bytes: number): CaseContent {
  return { kind: 'stream', bytes, write: (path) => writeParts(path, parts) };
}

function seedOf(seeds: Seed[], name: string): Seed {
  const seed = seeds.find((s) => s.name === name);
  if (!seed) throw new Error(`no seed ${name}`);
  return seed;
}

function bytesCase(name: string, format: Format, bytes: Buffer, expect: Expectation, extra: Partial<FuzzCase> = {}): FuzzCase {
  return { name, format, fileName: fileNameFor(format, bytes[0] === 0x1f && bytes[1] === 0x8b), content: { kind: 'bytes', bytes }, flag: '--file', expect, ...extra };
}

function deviceCases(options: HostileOptions): FuzzCase[] {
  const out: FuzzCase[] = [];
  for (const flag of ['--file', '--kvdb_dump_file'] as const) {
    const short = flag === '--file' ? 'file' : 'dump';
    for (const device of ['/dev/zero', '/dev/null', '/dev/urandom']) {
      out.push({ name: `device ${device} (${short})`, format: 'px-dump', fileName: '', content: { kind: 'path', path: device }, flag, expect: fail('a device is no artifact') });
    }
    out.push({ name: `empty directory (${short})`, format: 'px-dump', fileName: 'dumps', content: { kind: 'dir', files: {} }, flag, expect: fail('an empty directory') });
    out.push({ name: `missing file (${short})`, format: 'px-dump', fileName: 'pwx_kvdb_2026-01-01T00:00:00Z.dump', content: { kind: 'missing' }, flag, expect: fail('no such file') });
  }
  out.push({
    name: 'directory of one damaged dump (dump)',
    format: 'px-dump',
    fileName: 'dumps',
    content: { kind: 'dir', files: { 'pwx_kvdb_2026-01-01T00:00:00Z.dump': Buffer.from('[{"Key":"a","Value":"eA=="},') } },
    flag: '--kvdb_dump_file',
    expect: fail('the only dump is truncated'),
  });
  if (options.fifo) {
    out.push({ name: 'fifo nobody writes (file)', format: 'px-dump', fileName: 'pipe.dump', content: { kind: 'fifo' }, flag: '--file', expect: fail('a pipe is no artifact'), targets: ['etcd'] });
  }
  return out;
}

function emptyAndWrongKind(seeds: Seed[]): FuzzCase[] {
  const pxNew = seedOf(seeds, 'px-new');
  const snap = seedOf(seeds, 'consul-snap');
  const etcd = seedOf(seeds, 'etcd-snap');
  const dumpFlag = { flag: '--kvdb_dump_file' as const };
  return [
    bytesCase('empty file', 'px-dump', Buffer.alloc(0), fail('empty')),
    bytesCase('empty file (dump)', 'px-dump', Buffer.alloc(0), fail('empty'), dumpFlag),
    bytesCase('empty gzip', 'px-dump', gzipSync(Buffer.alloc(0)), fail('empty')),
    bytesCase('whitespace only', 'px-dump', Buffer.from('  \n\t \n'), fail('no JSON')),
    bytesCase('px "[" only', 'px-dump', Buffer.from('['), fail('unterminated'), dumpFlag),
    bytesCase('px empty array', 'px-dump', Buffer.from('[]'), reference, dumpFlag),
    bytesCase('consul-export empty array', 'consul-export', Buffer.from('[]'), reference),
    bytesCase('px json numbers', 'px-dump', Buffer.from('[1,2,3]'), reference, dumpFlag),
    bytesCase('px json object', 'px-dump', Buffer.from('{"Key":"a","Value":"eA=="}'), fail('not an array')),
    bytesCase('kvdr header only', 'kvdr-export', Buffer.from(`${seedOf(seeds, 'kvdr-export').bytes.toString('utf8').split('\n')[0] as string}\n`), fail('no trailer')),
    bytesCase('kvdr header, px body', 'kvdr-export', Buffer.concat([Buffer.from(`${seedOf(seeds, 'kvdr-export').bytes.toString('utf8').split('\n')[0] as string}\n`), pxNew.bytes]), fail('mixed kinds')),
    bytesCase('kvdr version 99', 'kvdr-export', Buffer.from(seedOf(seeds, 'kvdr-export').bytes.toString('utf8').replace('"version":2', '"version":99')), fail('unknown version')),
    bytesCase('wrong: consul export as dump', 'consul-export', seedOf(seeds, 'consul-export').bytes, fail('not a PX dump'), dumpFlag),
    bytesCase('wrong: kvdr export as dump', 'kvdr-export', seedOf(seeds, 'kvdr-export').bytes, fail('not a PX dump'), dumpFlag),
    bytesCase('wrong: etcd snapshot as dump', 'etcd-snapshot', etcd.bytes, fail('not a PX dump'), dumpFlag),
    bytesCase('wrong: consul snapshot as dump', 'consul-snapshot', snap.bytes, fail('not a PX dump'), dumpFlag),
    bytesCase('wrong: uncompressed snapshot tar', 'consul-snapshot', gunzipSync(snap.bytes), fail('a Consul snapshot is gzipped')),
    bytesCase('wrong: gzip of a gzip', 'px-dump', gzipSync(gzipSync(pxNew.bytes)), fail('double gzip')),
    bytesCase('wrong: PNG', 'px-dump', Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.alloc(64, 7)]), fail('an image')),
    bytesCase('wrong: zip', 'px-dump', Buffer.concat([Buffer.from('504b0304', 'hex'), Buffer.alloc(200, 1)]), fail('a zip')),
    bytesCase('wrong: ELF', 'px-dump', Buffer.concat([Buffer.from('7f454c46020101', 'hex'), Buffer.alloc(4096, 0)]), fail('a program')),
    bytesCase('wrong: foreign tar.gz', 'consul-snapshot', gzipSync(tarArchive([tarEntry({ name: 'hello.txt', body: Buffer.from('hello') })])), fail('not a snapshot')),
    bytesCase('wrong: UTF-16 dump', 'px-dump', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(pxNew.bytes.toString('utf8').slice(0, 4000), 'utf16le')]), fail('UTF-16'), dumpFlag),
    bytesCase('wrong: bbolt without trailer', 'etcd-snapshot', dbOf(etcd.bytes), fail('a raw member db has no sha256 trailer')),
    bytesCase('wrong: bbolt with a foreign trailer', 'etcd-snapshot', Buffer.concat([dbOf(etcd.bytes), createHash('sha256').update('other').digest()]), fail('trailer of something else')),
  ];
}

function deepNesting(): FuzzCase[] {
  const depth = 200_000;
  return [
    bytesCase('px deep nesting', 'px-dump', Buffer.from('['.repeat(depth) + ']'.repeat(depth)), fail('not a dump'), { flag: '--kvdb_dump_file' }),
    bytesCase('px deep nesting in an unknown field', 'px-dump', Buffer.from(`[{"Key":"a","Value":null,"X":${'['.repeat(depth)}${']'.repeat(depth)}}]`), {
      kind: 'either',
      pairs: [{ key: Buffer.from('a'), value: Buffer.alloc(0), flags: 0 }],
    }),
    bytesCase('consul-export deep nesting', 'consul-export', Buffer.from(`[{"key":"seed/a","flags":0,"value":"","x":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}]`), {
      kind: 'either',
      pairs: [{ key: Buffer.from('seed/a'), value: Buffer.alloc(0), flags: 0 }],
    }),
  ];
}

/** 200 MB lines and records, plain; gzip members that inflate to GBs. */
function bigCases(seeds: Seed[]): FuzzCase[] {
  const header = Buffer.from(`${seedOf(seeds, 'kvdr-export').bytes.toString('utf8').split('\n')[0] as string}\n`);
  const A = 0x41;
  const gz = (b: string | Buffer): Buffer => gzipSync(typeof b === 'string' ? Buffer.from(b) : b);
  const big = (name: string, format: Format, content: CaseContent, expect: Expectation, flag: FuzzCase['flag'] = '--file', gzip = false): FuzzCase => ({
    name,
    format,
    fileName: fileNameFor(format, gzip),
    content,
    flag,
    expect,
  });
  const snapMembers = snapshotMembers(seedOf(seeds, 'consul-snap').bytes);
  const meta = snapMembers.find((m) => m.name === 'meta.json') as TarMember;
  const sums = snapMembers.find((m) => m.name === 'SHA256SUMS') as TarMember;
  const etcdDb = dbOf(seedOf(seeds, 'etcd-snap').bytes);
  return [
    big('px 200 MB value (one line)', 'px-dump', stream([Buffer.from('[{"Key":"big","Value":"'), { chunk: plainChunk(A), times: 200 }, Buffer.from('"}]')], 200 * MiB), fail('a value no target holds'), '--kvdb_dump_file'),
    big('kvdr 200 MB line', 'kvdr-export', stream([header, { chunk: plainChunk(A), times: 200 }], 200 * MiB), fail('not a record')),
    big('consul-export 200 MB key', 'consul-export', stream([Buffer.from('[{"key":"seed/'), { chunk: plainChunk(0x6b), times: 200 }, Buffer.from('","flags":0,"value":""}]')], 200 * MiB), fail('a key no target holds')),
    big('px 200 MB of whitespace', 'px-dump', stream([Buffer.from('['), { chunk: plainChunk(0x20), times: 200 }, Buffer.from(']')], 200 * MiB), { kind: 'either', pairs: [] }),
    big('px gzip bomb (2 GiB value)', 'px-dump', stream([gz('[{"Key":"big","Value":"'), { chunk: gzChunk(A), times: 32 }, gz('"}]')], 2 * MiB), fail('a value no target holds'), '--kvdb_dump_file', true),
    big('kvdr gzip bomb (2 GiB line)', 'kvdr-export', stream([gz(header), { chunk: gzChunk(A), times: 32 }], 2 * MiB), fail('not a record'), '--file', true),
    big('consul-export gzip bomb (2 GiB value)', 'consul-export', stream([gz('[{"key":"seed/big","flags":0,"value":"'), { chunk: gzChunk(A), times: 32 }, gz('"}]')], 2 * MiB), fail('a value no target holds'), '--file', true),
    big('gzip bomb of zeros (file)', 'px-dump', stream([{ chunk: gzChunk(0), times: 32 }], 2 * MiB), fail('zeros'), '--file', true),
    big('gzip bomb of zeros (dump)', 'px-dump', stream([{ chunk: gzChunk(0), times: 32 }], 2 * MiB), fail('zeros'), '--kvdb_dump_file', true),
    big('etcd snapshot gzip bomb (1 GiB)', 'etcd-snapshot', stream([gz(etcdDb.subarray(0, 2 * 4096)), { chunk: gzChunk(0), times: 16 }, gz(Buffer.alloc(32, 9))], MiB), fail('trailer'), '--file', true),
    big('consul snapshot bomb (tar declares 2 GiB state.bin)', 'consul-snapshot', stream([
      gz(tarEntry({ name: 'meta.json', body: meta.body })),
      gz(tarEntry({ name: 'state.bin', size: 2 * 1024 * MiB, writeBody: false })),
      { chunk: gzChunk(0), times: 32 },
      gz(Buffer.concat([tarEntry({ name: 'SHA256SUMS', body: sums.body }), Buffer.alloc(1024)])),
    ], 2 * MiB), fail('state.bin is zeros, sums do not hold')),
  ];
}

function tarCases(seeds: Seed[], options: HostileOptions): FuzzCase[] {
  const members = snapshotMembers(seedOf(seeds, 'consul-snap').bytes);
  const entry = (m: TarMember): Buffer => tarEntry({ name: m.name, body: m.body });
  const byName = (n: string): TarMember => members.find((m) => m.name === n) as TarMember;
  const snap = (entries: Buffer[]): Buffer => gzipSync(tarArchive(entries));
  const [meta, state, sums] = [byName('meta.json'), byName('state.bin'), byName('SHA256SUMS')];
  const escape = `kvdr-fuzz-escape-${options.tag}`;
  const abs = `/tmp/kvdr-fuzz-abs-${options.tag}`;
  const pax = `kvdr-fuzz-pax-${options.tag}`;
  const landing = (name: string): string[] => options.escapeRoots.map((root) => `${root}/${name}`);
  const c = (name: string, bytes: Buffer, expect: Expectation, extra: Partial<FuzzCase> = {}): FuzzCase => bytesCase(`tar: ${name}`, 'consul-snapshot', bytes, expect, extra);
  return [
    c('entry ../escape', snap([...members.map(entry), tarEntry({ name: `../${escape}`, body: Buffer.from('x') })]), fail('an entry outside the archive'), { mustNotExist: landing(escape) }),
    c('entry with an absolute path', snap([...members.map(entry), tarEntry({ name: abs, body: Buffer.from('x') })]), fail('an absolute entry'), { mustNotExist: [abs] }),
    c('state.bin named ../state.bin', snap([entry(meta), tarEntry({ name: `../${escape}-state.bin`, body: state.body }), entry(sums)]), fail('no state.bin'), { mustNotExist: landing(`${escape}-state.bin`) }),
    c('PAX path ../escape', snap([paxEntry({ path: `../${pax}` }), tarEntry({ name: 'notes.txt', body: Buffer.from('x') }), ...members.map(entry)]), fail('an entry outside the archive'), { mustNotExist: landing(pax) }),
    c('state.bin symlink to /etc/passwd', snap([entry(meta), tarEntry({ name: 'state.bin', type: '2', linkname: '/etc/passwd' }), entry(sums)]), fail('a link')),
    c('state.bin hard link to meta.json', snap([entry(meta), tarEntry({ name: 'state.bin', type: '1', linkname: 'meta.json' }), entry(sums)]), fail('a link')),
    c('state.bin is a directory', snap([entry(meta), tarEntry({ name: 'state.bin/', type: '5' }), entry(sums)]), fail('a directory')),
    c('state.bin is a fifo', snap([entry(meta), tarEntry({ name: 'state.bin', type: '6' }), entry(sums)]), fail('a fifo')),
    c('state.bin is a char device', snap([entry(meta), tarEntry({ name: 'state.bin', type: '3' }), entry(sums)]), fail('a device')),
    c('state.bin twice', snap([entry(meta), entry(state), tarEntry({ name: 'state.bin', body: Buffer.from('garbage') }), entry(sums)]), fail('a duplicate member')),
    c('state.bin declares 8 GiB (octal), body short', snap([entry(meta), tarEntry({ name: 'state.bin', body: state.body, size: 0o77777777777 }), entry(sums)]), fail('a size past the end')),
    c('state.bin declares 2^62 (base-256)', snap([entry(meta), tarEntry({ name: 'state.bin', body: state.body, size: 2n ** 62n }), entry(sums)]), fail('a size past the end')),
    c('no SHA256SUMS', snap([entry(meta), entry(state)]), fail('no sums')),
    c('members reordered', snap([entry(sums), entry(state), entry(meta)]), reference),
    c('trailing garbage after gzip', Buffer.concat([seedOf(seeds, 'consul-snap').bytes, Buffer.from('garbage after the stream')]), fail('trailing data')),
    c('empty archive', snap([]), fail('no members')),
  ];
}

function msgpackCases(seeds: Seed[]): FuzzCase[] {
  const members = snapshotMembers(seedOf(seeds, 'consul-snap').bytes);
  const state = (members.find((m) => m.name === 'state.bin') as TarMember).body;
  const header = state.subarray(0, decodeAt(state, 0).end);
  const withState = (body: Buffer): Buffer => packSnapshot(members.map((m) => (m.name === 'state.bin' ? { ...m, body } : m)), true);
  const kvs = (fields: Record<string, unknown>): Buffer => Buffer.concat([Buffer.from([2]), encodeValue(fields)]);
  const entry = (key: string, value: Buffer | string): Record<string, unknown> => ({
    LockIndex: 0, Key: key, Flags: 0, Value: Buffer.isBuffer(value) ? value : Buffer.from(value), Session: '', CreateIndex: 7, ModifyIndex: 7,
  });
  const existing = seedOf(seeds, 'consul-snap').pairs.find((p) => p.key.toString('utf8').startsWith('seed/'))?.key.toString('utf8') ?? 'seed/a';
  const c = (name: string, body: Buffer, expect: Expectation): FuzzCase => bytesCase(`state.bin: ${name}`, 'consul-snapshot', withState(body), expect);
  const u32 = (prefix: number, n: number): Buffer => {
    const b = Buffer.alloc(5);
    b[0] = prefix;
    b.writeUInt32BE(n, 1);
    return b;
  };
  return [
    c('string declares 4 GiB', Buffer.concat([header, Buffer.from([2, 0x81]), encodeValue('Key'), u32(0xdb, 0xfffffff0), Buffer.from('abc')]), fail('a length past the end')),
    c('array declares 2^32-1 items', Buffer.concat([header, Buffer.from([2]), u32(0xdd, 0xffffffff)]), fail('a count past the end')),
    c('map declares 2^32-1 entries', Buffer.concat([header, Buffer.from([2]), u32(0xdf, 0xffffffff)]), fail('a count past the end')),
    c('200k nested arrays', Buffer.concat([header, Buffer.from([2]), Buffer.alloc(200_000, 0x91), Buffer.from([0xc0])]), fail('not a KV entry')),
    c('Key is an integer', Buffer.concat([header, kvs({ ...entry('x', 'v'), Key: 5 })]), fail('Key must be a string')),
    c('Value is a map', Buffer.concat([header, kvs({ ...entry('seed/m', ''), Value: { a: 1 } })]), fail('Value must be bytes')),
    c('unknown record type 99', Buffer.concat([state, Buffer.from([99]), encodeValue({ A: 1 })]), reference),
    c('a tombstone', Buffer.concat([state, Buffer.from([5]), encodeValue({ Key: 'seed/ghost', ModifyIndex: 9 })]), reference),
    c('header only', Buffer.from(header), reference),
    c('key climbing out of the scope', Buffer.concat([state, kvs(entry('seed/../../escaped', 'x'))]), reference),
    c('a 600 KiB value', Buffer.concat([state, kvs(entry('seed/huge', Buffer.alloc(600 * 1024, 1)))]), reference),
    c('a bin-typed value', Buffer.concat([state, Buffer.from([2, 0x82]), encodeValue('Key'), encodeValue('seed/bin'), encodeValue('Value'), Buffer.from([0xc4, 3, 1, 2, 3])]), reference),
    c('duplicate key', Buffer.concat([state, kvs(entry(existing, 'dup'))]), reference),
    c('type byte with no record', Buffer.concat([state, Buffer.from([2])]), reference),
    c('record cut short', state.subarray(0, state.length - 3), reference),
  ];
}

function bboltCases(seeds: Seed[]): FuzzCase[] {
  const original = dbOf(seedOf(seeds, 'etcd-snap').bytes);
  const probe = new BboltFile(original);
  const keyRoot = probe.keyBucketRoot();
  const c = (name: string, damage: (db: Buffer, f: BboltFile) => void, resum = true, gzip = false): FuzzCase => {
    const db = Buffer.from(original);
    const f = new BboltFile(db);
    damage(db, f);
    if (resum) resumMetas(db, f);
    const bytes = withTrailer(db);
    return bytesCase(`bbolt: ${name}`, 'etcd-snapshot', gzip ? gzipSync(bytes) : bytes, fail('structure points nowhere'));
  };
  const metas = (f: BboltFile, fn: (at: number) => void): void => [0, 1].forEach((n) => fn(f.metaOffset(n as 0 | 1)));
  const leaf = probe.firstKeyLeaf();
  const cases = [
    c('page size 0', (db, f) => metas(f, (at) => db.writeUInt32LE(0, at + 8))),
    c('page size 1 GiB', (db, f) => metas(f, (at) => db.writeUInt32LE(1 << 30, at + 8))),
    c('page size 3', (db, f) => metas(f, (at) => db.writeUInt32LE(3, at + 8))),
    c('root page past the end', (db, f) => metas(f, (at) => db.writeBigUInt64LE(BigInt(db.readBigUInt64LE(at + 40)) + 1000n, at + 16))),
    c('high-water mark 2^40', (db, f) => metas(f, (at) => db.writeBigUInt64LE(1n << 40n, at + 40))),
    c('key bucket points at the root (cycle)', (db, f) => db.writeBigUInt64LE(BigInt(f.rootPage()), f.keyBucketHeaderOffset())),
    c('key bucket inline, no page follows', (db, f) => db.writeBigUInt64LE(0n, f.keyBucketHeaderOffset())),
    c('key bucket points past the end', (db, f) => db.writeBigUInt64LE(0xffffffffn, f.keyBucketHeaderOffset())),
    c('leaf key size 2^31', (db, f) => db.writeUInt32LE(0x7fffffff, f.element(leaf, 0) + 8)),
    c('leaf value size 2^31', (db, f) => db.writeUInt32LE(0x7fffffff, f.element(leaf, 0) + 12)),
    c('leaf element pos past the page', (db, f) => db.writeUInt32LE(0xffffff00, f.element(leaf, 0) + 4)),
    c('leaf count 65535', (db) => db.writeUInt16LE(0xffff, leaf.offset + 10)),
    c('leaf overflow 2^28 pages', (db) => db.writeUInt32LE(0x0fffffff, leaf.offset + 12)),
    c('unknown page type', (db) => db.writeUInt16LE(0x20, leaf.offset + 8)),
    c('both meta checksums wrong', (db, f) => metas(f, (at) => db.writeUInt8((db[at + 56] as number) ^ 1, at + 56)), false),
    c('bad magic', (db, f) => metas(f, (at) => db.writeUInt32LE(0xdeadbeef, at))),
    c('version 3', (db, f) => metas(f, (at) => db.writeUInt32LE(3, at + 4))),
    c('protobuf bad wire type', (db, f) => db.writeUInt8(0x0f, f.leafValueOffset(leaf, 0))),
    c('protobuf key length past the value', (db, f) => db.writeUInt8(0x7f, f.leafValueOffset(leaf, 0) + 1)),
    c('key bucket points at the root, gzipped', (db, f) => db.writeBigUInt64LE(BigInt(f.rootPage()), f.keyBucketHeaderOffset()), true, true),
    bytesCase('bbolt: truncated to half (trailer recomputed)', 'etcd-snapshot', withTrailer(original.subarray(0, Math.floor(original.length / 2 / 4096) * 4096)), fail('pages missing')),
  ];
  if (keyRoot.flags === PAGE_BRANCH) {
    cases.push(
      c('branch points at itself', (db, f) => db.writeBigUInt64LE(BigInt(keyRoot.id), f.element(keyRoot, 0) + 8)),
      c('branch child past the end', (db, f) => db.writeBigUInt64LE(0xffffffffffn, f.element(keyRoot, keyRoot.count - 1) + 8)),
      c('branch child is a meta page', (db, f) => db.writeBigUInt64LE(1n, f.element(keyRoot, 0) + 8)),
    );
  }
  return cases;
}

/**
 * Cases whose damage is all in the artifact's own structure run against one target each, alternating
 * (unless `both`), to keep the run short; a case whose outcome depends on the target keeps both.
 */
function alternate(cases: FuzzCase[], both: boolean): FuzzCase[] {
  if (both) return cases;
  return cases.map((c, i) => (c.targets || c.name.includes('600 KiB') ? c : { ...c, targets: [i % 2 === 0 ? 'etcd' : 'consul'] }));
}

export function hostileCases(seeds: Seed[], options: HostileOptions & { bothTargets: boolean }): FuzzCase[] {
  return [
    ...deviceCases(options),
    ...emptyAndWrongKind(seeds),
    ...deepNesting(),
    ...alternate([...tarCases(seeds, options), ...msgpackCases(seeds), ...bboltCases(seeds)], options.bothTargets),
    ...(options.big ? alternate(bigCases(seeds), options.bothTargets) : []),
  ].map((c) => ({ ...c, name: `hostile ${c.name}` }));
}

import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { encode } from '@msgpack/msgpack';
import { describe, expect, it } from 'vitest';
import { verifyConsulSnapshot, type ConsulSnapshotMeta } from '../../src/formats/consul-snapshot.js';
import { readConsulSnapshotKv } from '../../src/formats/consul-state-reader.js';
import type { ReaderLimits } from '../../src/formats/limits.js';
import type { KvRecord } from '../../src/formats/record.js';
import { IntegrityError, KvdrError } from '../../src/util/errors.js';
import { readAll } from '../../src/util/streams.js';
import { chunked, collect, consulSnapshot, dirEntry, settles, snapshotTar, stateBin, tarMember, tarOf, type SnapshotKv } from './formats-fixtures.js';

const kvs: SnapshotKv[] = [
  { key: Buffer.from('pwx/c1/a'), value: Buffer.from([0, 1, 0xff, 0xfe]), flags: 5, createIndex: 10, modifyIndex: 12 },
  { key: Buffer.from('pwx/c1/empty'), value: Buffer.alloc(0) },
  { key: Buffer.from('pwx/c1/ünïcode'), value: Buffer.from('välue') },
  { key: Buffer.from('pwx/c1/big'), value: Buffer.alloc(300_000, 9) },
];

async function read(bytes: Buffer, limits: ReaderLimits = {}, chunk = 4096): Promise<{ records: KvRecord[]; meta: ConsulSnapshotMeta | undefined }> {
  let meta: ConsulSnapshotMeta | undefined;
  const records = await settles(collect(readConsulSnapshotKv(chunked(bytes, chunk), 's.snap', (m) => (meta = m), limits)));
  return { records, meta };
}

async function refusal(bytes: Buffer, limits: ReaderLimits = {}, chunk = 4096): Promise<Error> {
  return read(bytes, limits, chunk).then(
    () => new Error('no failure'),
    (err: Error) => err,
  );
}

/** A snapshot whose SHA256SUMS match a state.bin that is itself malformed (written damaged). */
const withState = (state: Buffer): Buffer => gzipSync(snapshotTar(state));
const header = Buffer.from(encode({ LastIndex: 1 }));

describe('consul snapshot reader', () => {
  it('yields the KV entries with their bytes, flags and indexes, skipping other records', async () => {
    const { records, meta } = await read(consulSnapshot(kvs));
    expect(records).toEqual(kvs.map((kv) => ({ key: kv.key, value: kv.value, flags: kv.flags ?? 0, createRevision: kv.createIndex ?? 1, modRevision: kv.modifyIndex ?? 1 })));
    expect(meta).toMatchObject({ Version: 1, Index: 42 });
  });

  it('settles with an IntegrityError when cut at any offset (never hangs, never exits)', async () => {
    const snap = consulSnapshot(kvs.slice(0, 3));
    const offsets = new Set<number>([0, 1, 2, 9, 10, 11, 100, snap.length - 9, snap.length - 8, snap.length - 1]);
    for (let at = 0; at < snap.length; at += Math.max(1, Math.floor(snap.length / 150))) offsets.add(at);
    for (const at of offsets) {
      const err = await refusal(snap.subarray(0, at), {}, 97);
      expect(err, `cut at ${at}`).toBeInstanceOf(IntegrityError);
      expect(err.message).not.toContain('\n');
    }
  });

  it('settles when the tar inside is cut at any offset (the gzip itself whole)', async () => {
    const tar = snapshotTar(stateBin(kvs.slice(0, 2)));
    const members = tar.length - 1024; // then the two zero blocks that end an archive
    for (let at = 0; at < tar.length; at += 97) {
      const outcome = await read(gzipSync(tar.subarray(0, at)), {}, 50).then(
        (got) => got.records.length,
        (err: unknown) => err,
      );
      // Only the end-of-archive blocks may go missing: every member is whole and checked then.
      if (at < members) expect(outcome, `tar cut at ${at}`).toBeInstanceOf(IntegrityError);
      else expect(outcome, `tar cut at ${at}`).toBe(2);
    }
  });

  it('refuses a member declaring a huge size before reading it', async () => {
    const state = stateBin(kvs);
    const lying = tarMember('state.bin', Buffer.alloc(0), { size: 2 ** 40 });
    const err = await refusal(gzipSync(Buffer.concat([tarMember('meta.json', Buffer.from('{}')), lying, Buffer.alloc(4096)])));
    expect(err.message).toMatch(/^s\.snap: archive member state\.bin declares 1099511627776 bytes, more than the \d+-byte \(16.0 GiB\) cap; .*refused before reading it/);
    // Under a cap of its own, a real state.bin over it is refused the same way.
    expect((await refusal(consulSnapshot(kvs), { maxInflatedBytes: state.length - 1 })).message).toMatch(/declares \d+ bytes, more than the/);
    // And meta.json or SHA256SUMS are small by nature.
    const fat = gzipSync(tarOf([tarMember('meta.json', Buffer.alloc(2 * 1024 ** 2, 0x20))]));
    expect((await refusal(fat)).message).toMatch(/archive member meta\.json declares 2097152 bytes, more than the 1048576-byte/);
  });

  it('caps inflated bytes', async () => {
    const snap = consulSnapshot(kvs);
    const cap = stateBin(kvs).length + 1000; // state.bin declares less, the whole tar is more
    expect((await refusal(snap, { maxInflatedBytes: cap }, 512)).message).toMatch(new RegExp(`^s\\.snap: inflates past ${cap} bytes`));
  });

  it.each([
    ['a traversal path', tarMember('../x', Buffer.from('x')), /archive member "\.\.\/x" has an absolute or parent-directory path/],
    ['an absolute path', tarMember('/etc/x', Buffer.from('x')), /archive member "\/etc\/x" has an absolute or parent-directory path/],
    ['a nested traversal', tarMember('a/../../x', Buffer.from('x')), /has an absolute or parent-directory path/],
    ['a symlink', tarMember('state.bin', Buffer.alloc(0), { type: 'SymbolicLink', linkpath: '/etc/passwd' }), /archive member "state\.bin" is a SymbolicLink, not a regular file/],
    ['a hard link', tarMember('meta.json', Buffer.alloc(0), { type: 'Link', linkpath: 'state.bin' }), /is a Link, not a regular file/],
    ['a directory', tarMember('dir/', Buffer.alloc(0), { type: 'Directory' }), /is a Directory, not a regular file/],
    ['an unexpected name', tarMember('extra.txt', Buffer.from('x')), /unexpected archive member "extra\.txt"/],
  ])('refuses %s', async (_what, member, message) => {
    for (const members of [[member], [tarMember('meta.json', Buffer.from('{}')), member]]) {
      const err = await refusal(gzipSync(tarOf(members)));
      expect(err).toBeInstanceOf(IntegrityError);
      expect(err.message).toMatch(message);
    }
    // After a whole, valid snapshot too (Consul's reader refuses extra members).
    expect((await refusal(gzipSync(snapshotTar(stateBin(kvs), { extra: [member] })))).message).toMatch(message);
  });

  it('refuses a member that appears twice, and a tar.gz inside the gzip', async () => {
    expect((await refusal(gzipSync(snapshotTar(stateBin(kvs), { extra: [tarMember('meta.json', Buffer.from('{}'))] })))).message).toMatch(/archive member meta\.json appears twice/);
    expect((await refusal(gzipSync(consulSnapshot(kvs)))).message).toMatch(/the archive inside is compressed again/);
  });

  it('refuses data after the last member, even where tar would take it for an end-of-archive block', async () => {
    const tar = snapshotTar(stateBin(kvs));
    const end = tar.length - 1024;
    const checksumOnly = Buffer.from(tar);
    checksumOnly[end + 148] = 1; // tar reads a block whose only non-zero byte is in its checksum as a null block
    const garbage = Buffer.concat([tar, Buffer.from('trailing')]);
    for (const bytes of [checksumOnly, garbage]) {
      expect((await refusal(gzipSync(bytes))).message).toMatch(/^s\.snap: the tar archive inside has data at byte \d+, after its last member \(which ends at byte \d+\)/);
    }
    // Without the end-of-archive blocks, or with more zero blocks, it is still whole.
    expect((await read(gzipSync(tar.subarray(0, end)))).records).toHaveLength(kvs.length);
    expect((await read(gzipSync(Buffer.concat([tar, Buffer.alloc(10240)])))).records).toHaveLength(kvs.length);
  });

  it('refuses a state.bin that is empty or holds a header but no records', async () => {
    expect((await refusal(withState(Buffer.alloc(0)))).message).toBe('s.snap: state.bin is empty; a Consul snapshot always holds a header and records, this one is damaged');
    expect((await refusal(withState(header))).message).toBe('s.snap: state.bin has a header but no records; Consul always writes records, this snapshot is damaged');
  });

  it.each([
    ['ends inside a value', Buffer.concat([stateBin(kvs), Buffer.from([2]), dirEntry(kvs[0] as SnapshotKv).subarray(0, 20)]), /^s\.snap: state\.bin cannot be decoded \(it ends inside a msgpack value, after \d+ bytes\); the snapshot is damaged or of an unknown layout$/],
    ['ends after a type byte', Buffer.concat([stateBin(kvs), Buffer.from([2])]), /state\.bin ends after a type byte/],
    ['starts without a header', Buffer.concat([Buffer.from([2]), dirEntry(kvs[0] as SnapshotKv)]), /does not start with a snapshot header/],
    ['has a type that is not a byte', Buffer.concat([header, Buffer.from(encode('KVS')), dirEntry(kvs[0] as SnapshotKv)]), /has no record type byte at byte 12/],
    ['has a KV record that is not a map', Buffer.concat([header, Buffer.from([2]), Buffer.from(encode([1, 2]))]), /has a KV record at byte 13 that is not a map/],
    ['has a KV record without a Key', Buffer.concat([header, Buffer.from([2]), Buffer.from(encode({ Value: 'x' }))]), /KV record at byte 13 without a Key/],
    ['has a byte msgpack never uses', Buffer.concat([header, Buffer.from([2, 0xc1])]), /^s\.snap: state\.bin cannot be decoded \(byte 13 is 0xc1, which msgpack never uses\); the snapshot is damaged or of an unknown layout$/],
  ])('refuses a state.bin that %s (SHA256SUMS matching it)', async (_what, state, message) => {
    const err = await refusal(withState(state));
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(message);
  });

  it('refuses hostile msgpack lengths without allocating them', async () => {
    const before = process.memoryUsage().rss;
    const started = Date.now();
    // A KV record declaring a 4 GiB string; a skipped record of nested array16 headers, each declaring
    // 65535 elements (the library would allocate 512 KiB per 3 bytes); a map32 declaring 2^32 - 1 pairs.
    const hostile = [
      Buffer.concat([header, Buffer.from([2]), Buffer.from([0x81, 0xa3, 0x4b, 0x65, 0x79, 0xdb, 0xff, 0xff, 0xff, 0xff]), Buffer.alloc(1000)]),
      Buffer.concat([header, Buffer.from([0]), Buffer.alloc(3 * 100_000, 0).fill(Buffer.from([0xdc, 0xff, 0xff]))]),
      Buffer.concat([header, Buffer.from([2]), Buffer.from([0x91, 0x91, 0x91]), Buffer.alloc(3 * 100_000).fill(Buffer.from([0xdc, 0x00, 0x10]))]),
      Buffer.concat([header, Buffer.from([2, 0xdf, 0xff, 0xff, 0xff, 0xff])]),
    ];
    for (const state of hostile) {
      const err = await refusal(withState(state), { maxRecordBytes: 1024 ** 2 });
      expect(err).toBeInstanceOf(IntegrityError);
      expect(err.message).toMatch(/state\.bin cannot be decoded \((the msgpack value at byte \d+ is, or declares itself, larger than the 1.0 MiB record limit|it ends inside a msgpack value, after \d+ bytes)\)/);
    }
    expect(Date.now() - started).toBeLessThan(5000);
    expect(process.memoryUsage().rss - before).toBeLessThan(150 * 1024 ** 2);
  });

  it('reports a SHA256SUMS mismatch before the damage it causes in state.bin', async () => {
    const state = stateBin(kvs);
    const good = snapshotTar(state);
    const sums = Buffer.from(`${createHash('sha256').update(state).digest('hex')}  state.bin\n${createHash('sha256').update('x').digest('hex')}  meta.json\n`);
    expect((await refusal(gzipSync(snapshotTar(state, { sums })))).message).toMatch(/^s\.snap: SHA256SUMS mismatch for meta\.json/);
    const damaged = Buffer.from(good);
    damaged[good.indexOf(Buffer.from('pwx/c1/a')) - 2] = 0xc1; // inside state.bin: a byte msgpack never uses
    expect((await refusal(gzipSync(damaged))).message).toMatch(/^s\.snap: SHA256SUMS mismatch for state\.bin/);
    expect((await refusal(gzipSync(snapshotTar(state, { sums: Buffer.from('nonsense\n') })))).message).toMatch(/line 1 of SHA256SUMS is not/);
  });

  it('refuses a meta.json of another snapshot version, or that is not JSON', async () => {
    expect((await refusal(consulSnapshot(kvs, { meta: { Version: 2, Index: 1 } }))).message).toMatch(/meta\.json says snapshot version 2/);
    const state = stateBin(kvs);
    const meta = Buffer.from('{not json');
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const tar = tarOf([tarMember('meta.json', meta), tarMember('state.bin', state), tarMember('SHA256SUMS', Buffer.from(`${sha(state)}  state.bin\n${sha(meta)}  meta.json\n`))]);
    expect((await refusal(gzipSync(tar))).message).toMatch(/meta\.json is not valid JSON/);
  });

  it('fails with nothing but KvdrErrors on any single flipped byte of the inflated tar', async () => {
    const tar = snapshotTar(stateBin(kvs.slice(0, 2)));
    for (let at = 0; at < tar.length; at += 7) {
      const bytes = Buffer.from(tar);
      bytes[at] = (bytes[at] as number) ^ 0x5a;
      const outcome = await read(gzipSync(bytes), {}, 333).then(
        () => undefined,
        (err: unknown) => err,
      );
      if (outcome !== undefined) expect(outcome, `flip at ${at}`).toBeInstanceOf(KvdrError);
    }
  });
});

describe('consul snapshot check (backup and verify)', () => {
  it('passes a snapshot through unchanged and reports meta and sums', async () => {
    const snap = consulSnapshot(kvs);
    const check = verifyConsulSnapshot('snap');
    expect((await readAll(chunked(snap, 1000).pipe(check))).equals(snap)).toBe(true);
    expect(check.meta()).toMatchObject({ Version: 1 });
    expect(Object.keys(check.sums() ?? {}).sort()).toEqual(['meta.json', 'state.bin']);
  });

  it('says what became of a snapshot whose SHA256SUMS do not match', async () => {
    const tar = snapshotTar(stateBin(kvs));
    const at = tar.indexOf(Buffer.from('pwx/c1/a'));
    tar[at] = (tar[at] as number) ^ 1;
    const run = (check: ReturnType<typeof verifyConsulSnapshot>): Promise<Error> => settles(readAll(chunked(gzipSync(tar)).pipe(check))).then(() => new Error('no failure'), (e: Error) => e);
    expect((await run(verifyConsulSnapshot('snap'))).message).toMatch(/^snap: SHA256SUMS mismatch for state\.bin .*; the snapshot is corrupt and was not stored$/);
    expect((await run(verifyConsulSnapshot('backup b1', {}, 'must be restored from another backup'))).message).toMatch(/the snapshot is corrupt and must be restored from another backup$/);
    expect((await refusal(gzipSync(tar))).message).toMatch(/the snapshot is corrupt$/);
  });

  it('fails a cut, an extra member, a bomb, without hanging', async () => {
    const snap = consulSnapshot(kvs);
    const fail = (bytes: Buffer, maxInflatedBytes?: number): Promise<Error> =>
      settles(readAll(chunked(bytes, 1000).pipe(verifyConsulSnapshot('snap', maxInflatedBytes ? { maxInflatedBytes } : {})))).then(
        () => new Error('no failure'),
        (err: Error) => err,
      );
    expect((await fail(snap.subarray(0, snap.length - 20))).message).toMatch(/^snap: the archive is damaged or cut short \(truncated gzip: /);
    expect((await fail(gzipSync(snapshotTar(stateBin(kvs), { extra: [tarMember('x', Buffer.from('y'))] })))).message).toMatch(/unexpected archive member "x"/);
    expect((await fail(snap, 10_000)).message).toMatch(/declares \d+ bytes, more than the 10000-byte|inflates past 10000 bytes/);
    expect((await fail(gzipSync(Buffer.concat([snapshotTar(stateBin([])).subarray(0, 512), Buffer.alloc(50 * 1024 ** 2)])), 1024 ** 2)).message).toMatch(/inflates past 1048576 bytes|declares/);
    const empty = await settles(readAll(Readable.from([]).pipe(verifyConsulSnapshot('snap'))).then(() => new Error('no failure'), (e: Error) => e));
    expect(empty.message).toMatch(/^snap: the archive is damaged or cut short \(is empty \(0 bytes\)/);
  });
});

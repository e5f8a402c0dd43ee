import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consulExportWriter } from '../../src/formats/consul-export.js';
import { exportWriter } from '../../src/formats/kvdr-export.js';
import type { KvRecord } from '../../src/formats/record.js';
import type * as LocalArtifactModule from '../../src/restore/local-artifact.js';
import type { LocalArtifact } from '../../src/restore/artifact.js';
import type * as OffThreadModule from '../../src/restore/off-thread.js';
import { readAll } from '../../src/util/streams.js';
import { PROJECT_ROOT } from '../harness/stack.js';

/**
 * Records read on a worker thread (what a restore's plan pass uses for streamed formats) are the
 * records read on the main thread, and a damaged artifact fails the same way. The worker runs compiled
 * code, so this drives the built modules (the suite's global setup builds them) rather than the sources.
 */
let built: typeof LocalArtifactModule;
let offThread: typeof OffThreadModule;
let dir: string;

beforeAll(async () => {
  built = (await import(`${PROJECT_ROOT}dist/restore/local-artifact.js`)) as typeof LocalArtifactModule;
  offThread = (await import(`${PROJECT_ROOT}dist/restore/off-thread.js`)) as typeof OffThreadModule;
  dir = await mkdtemp(join(tmpdir(), 'kvdr-off-thread-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const records: KvRecord[] = [
  ...Array.from({ length: 20_000 }, (_, i) => ({ key: Buffer.from(`pwx/c1/k/${String(i).padStart(6, '0')}`), value: Buffer.from(`value ${i}`.repeat(i % 50)) })),
  { key: Buffer.from('pwx/c1/l/leased'), value: Buffer.from('x'), lease: '7587883471113469953' },
  { key: Buffer.from('pwx/c1/z/big'), value: Buffer.alloc(3 * 1024 * 1024, 7) }, // larger than a frame chunk
  { key: Buffer.from('pwx/c1/z/empty'), value: Buffer.alloc(0), flags: 9 },
];

async function kvdrExport(): Promise<Buffer> {
  const writer = exportWriter(() => ({ format: 'kvdr-export', version: 2, source: { type: 'etcd' }, prefix: Buffer.from('pwx/c1/').toString('base64'), revision: 77, createdAt: '2026-11-28T00:00:00Z' }));
  return readAll(Readable.from(records.map((r) => ({ ...r, createRevision: 2, modRevision: 3, version: 1 }))).pipe(writer));
}
async function consulExport(): Promise<Buffer> {
  return readAll(Readable.from(records).pipe(consulExportWriter()));
}
function pxDump(): Buffer {
  return Buffer.from(JSON.stringify(records.map((r, i) => ({ Key: r.key.toString('utf8').slice('pwx/c1/'.length), Value: r.value.toString('base64'), KVDBIndex: 0, ModifiedIndex: i + 1 }))));
}

async function artifactOf(name: string, format: LocalArtifact['format'], bytes: Buffer, gzip: boolean): Promise<LocalArtifact> {
  const path = join(dir, `${name}${gzip ? '.gz' : ''}`);
  await writeFile(path, gzip ? gzipSync(bytes) : bytes);
  return { path, format, compression: gzip ? 'gzip' : 'none', label: name };
}

type Seen = { records: string[]; origin: unknown } | { error: string; exitCode: unknown; name: string };

/** Every record as key, value digest, flags and lease, and the origin; or the failure. */
async function readWith(artifact: LocalArtifact, offThread: boolean, prefix?: Buffer): Promise<Seen> {
  const reader = built.openArtifact(artifact, { offThread });
  try {
    const seen: string[] = [];
    for await (const r of reader.records(prefix)) seen.push(`${r.key.toString('hex')} ${r.value.length}:${r.value.subarray(0, 40).toString('hex')} ${r.flags ?? '-'} ${r.lease && r.lease !== '0' ? r.lease : '-'}`);
    return { records: seen, origin: reader.origin() };
  } catch (err) {
    return { error: (err as Error).message, exitCode: (err as { exitCode?: unknown }).exitCode, name: (err as Error).name };
  } finally {
    await reader.close();
  }
}

describe('records read on a worker thread', () => {
  it('run on a worker where the code is compiled (as the CLI runs), so the cases below compare two threads', () => {
    expect(offThread.offThreadAvailable()).toBe(true);
  });

  it.each([
    ['a kvdr export', 'etcd-export', kvdrExport],
    ['a consul kv export', 'consul-export', consulExport],
    ['a PX dump', 'px-dump', async () => pxDump()],
  ] as const)('are the records of %s read here, gzipped or not, with its origin', async (name, format, make) => {
    const bytes = await make();
    for (const gzip of [true, false]) {
      const artifact = await artifactOf(`${format}-whole`, format, bytes, gzip);
      const here = await readWith(artifact, false);
      const there = await readWith(artifact, true);
      expect('records' in here && here.records.length).toBe(records.length);
      expect(there).toEqual(here);
    }
  }, 60_000);

  it('keep to a prefix as the reader does', async () => {
    const artifact = await artifactOf('prefix', 'etcd-export', await kvdrExport(), true);
    const there = await readWith(artifact, true, Buffer.from('pwx/c1/z/'));
    expect(there).toEqual(await readWith(artifact, false, Buffer.from('pwx/c1/z/')));
  });

  it('fail as the reader does, in one line with its exit code, for a truncated, damaged or foreign artifact', async () => {
    const whole = gzipSync(await kvdrExport());
    const cases: [string, Buffer][] = [
      ['truncated gzip', whole.subarray(0, Math.floor(whole.length / 2))],
      ['flipped byte', Buffer.from(whole.map((b, i) => (i === 5000 ? b ^ 0x40 : b)))],
      ['not an export', gzipSync(Buffer.from('{"hello":"world"}\n'))],
      ['empty', Buffer.alloc(0)],
    ];
    for (const [name, bytes] of cases) {
      const path = join(dir, `damaged-${name.replace(/ /g, '-')}.gz`);
      await writeFile(path, bytes);
      const artifact: LocalArtifact = { path, format: 'etcd-export', compression: 'gzip', label: name };
      const here = await readWith(artifact, false);
      const there = await readWith(artifact, true);
      expect('error' in here, name).toBe(true);
      expect(there, name).toEqual(here);
    }
  });

  it('stop when a pass is given up early, and a later pass starts afresh', async () => {
    const artifact = await artifactOf('early', 'etcd-export', await kvdrExport(), true);
    const reader = built.openArtifact(artifact, { offThread: true });
    try {
      let n = 0;
      for await (const _ of reader.records()) if (++n === 10) break;
      expect(n).toBe(10);
      let again = 0;
      for await (const _ of reader.records()) again++;
      expect(again).toBe(records.length);
    } finally {
      await reader.close();
    }
  });
});

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvRecord } from '../../src/formats/record.js';
import { openArtifact, sniffArtifact } from '../../src/restore/local-artifact.js';
import { IntegrityError } from '../../src/util/errors.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';

const run = promisify(execFile);

async function keys(records: AsyncIterable<KvRecord>): Promise<string[]> {
  const out: string[] = [];
  for await (const r of records) out.push(`${r.key.toString('hex')}=${r.value.toString('hex')}`);
  return out;
}

describe('an opened artifact: a gzipped etcd snapshot is inflated and checked once for all passes', () => {
  let dir: string;
  let temp: string;
  let plain: string;
  let gz: string;
  const previousTmp = process.env['TMPDIR'];
  const prefix = `${uniqueName('artifact')}/`;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-artifact-'));
    // Temp copies go here, so that other test runs' temp files cannot be mistaken for ours.
    temp = join(dir, 'tmp');
    await mkdir(temp);
    const etcdctl = (...args: string[]) => run('etcdctl', ['--endpoints', requireEnv('KVDR_ETCD_ENDPOINT'), ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
    for (const k of ['a/1', 'a/2', 'b/1']) await etcdctl('put', `${prefix}${k}`, `value of ${k}`);
    plain = join(dir, 'snap.db');
    await etcdctl('snapshot', 'save', plain);
    gz = join(dir, 'snap.db.gz');
    await writeFile(gz, gzipSync(await readFile(plain)));
    process.env['TMPDIR'] = temp;
  }, 60_000);
  afterAll(async () => {
    if (previousTmp === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = previousTmp;
    await rm(dir, { recursive: true, force: true });
  });

  it('serves every pass from one inflated copy, removed on close', async () => {
    const artifact = await sniffArtifact(gz);
    expect(artifact).toMatchObject({ format: 'etcd-snapshot', compression: 'gzip' });
    const reader = openArtifact(artifact);
    expect(await readdir(temp)).toEqual([]); // lazily: nothing until a pass starts
    const first = await keys(reader.records(Buffer.from(prefix)));
    expect(first).toHaveLength(3);
    expect(await readdir(temp)).toHaveLength(1);
    // The stored file could vanish now: later passes read the inflated copy, not the gzip again.
    await writeFile(gz, 'no longer a snapshot');
    expect(await keys(reader.records(Buffer.from(prefix)))).toEqual(first);
    expect(await readdir(temp)).toHaveLength(1);
    expect(reader.origin().revision).toBeGreaterThan(0);
    await reader.close();
    expect(await readdir(temp)).toEqual([]);
    await writeFile(gz, gzipSync(await readFile(plain)));

    const direct = openArtifact(await sniffArtifact(plain));
    try {
      expect(await keys(direct.records(Buffer.from(prefix)))).toEqual(first);
      expect(direct.origin().revision).toBe(reader.origin().revision);
    } finally {
      await direct.close();
    }
    expect(await readdir(temp)).toEqual([]);
  });

  it('refuses a gzipped snapshot whose trailer does not match, and leaves no temp copy behind', async () => {
    const bytes = await readFile(plain);
    bytes[5000] = (bytes[5000] as number) ^ 1;
    const bad = join(dir, 'bad.db.gz');
    await writeFile(bad, gzipSync(bytes));
    const reader = openArtifact(await sniffArtifact(bad));
    const err = await keys(reader.records()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as Error).message).toMatch(/^bad\.db\.gz: sha256 trailer mismatch .*; the snapshot is corrupt and nothing was read from it$/);
    expect(await readdir(temp)).toEqual([]);
    // Every later pass gives the same refusal, without inflating again.
    await expect(keys(reader.records())).rejects.toThrow(/sha256 trailer mismatch/);
    expect(await readdir(temp)).toEqual([]);
    await reader.close();
  });
});

import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_FORMAT, EXPORT_VERSION, exportWriter, type ExportHeader } from '../../src/formats/kvdr-export.js';
import type { KvRecord } from '../../src/formats/record.js';
import { openStore } from '../../src/repository/open-store.js';
import { prefixEnd } from '../../src/sources/etcd/range-reader.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { restore } from '../../src/restore/engine.js';
import { EtcdTarget } from '../../src/sources/etcd/etcd-target.js';
import { KvdrError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr, type CliResult } from '../harness/cli.js';
import { consulPairs, consulPut } from '../harness/consul-instance.js';
import { quietLogger } from '../harness/config.js';
import { startEtcd } from '../harness/etcd-instance.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { trailEvents } from '../harness/trail.js';
import { PROJECT_ROOT } from '../harness/stack.js';

/**
 * Invariant 5a: a restore that fails after its first write puts the scope back as it was. Here the
 * failure is Ctrl-C (SIGINT) or SIGTERM, sent the moment the target shows the restore's first keys,
 * against the real etcd and Consul, with and without --force, with a safety backup and with only the
 * local spool (--no-safety-backup).
 */

/** Runs the CLI and sends `signal` once `ready()` says the restore has started writing. */
async function interrupted(args: readonly string[], env: NodeJS.ProcessEnv, ready: (stderr: string) => Promise<boolean>, signal: NodeJS.Signals): Promise<CliResult & { signalled: boolean }> {
  const child = spawn(process.execPath, [`${PROJECT_ROOT}dist/cli/kvdr.js`, ...args], { env: { ...process.env, KVDR_CONFIG: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  let signalled = false;
  const deadline = Date.now() + 60_000;
  while (child.exitCode === null && Date.now() < deadline) {
    if (await ready(stderr)) {
      child.kill(signal);
      signalled = true;
      break;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await closed;
  clearTimeout(timer);
  return { code, stdout, stderr, signalled };
}

/** A kvdr export of `count` keys under `prefix`, each a few hundred bytes: big enough to interrupt mid-replay. */
async function writeExport(path: string, prefix: string, count: number): Promise<void> {
  async function* records(): AsyncIterable<KvRecord[]> {
    const page: KvRecord[] = [];
    for (let i = 0; i < count; i++) {
      page.push({ key: Buffer.from(`${prefix}new/${String(i).padStart(7, '0')}`), value: Buffer.alloc(300, i % 251), createRevision: 1, modRevision: 1, version: 1 });
      if (page.length === 1000) yield page.splice(0);
    }
    if (page.length) yield page;
  }
  const header: ExportHeader = { format: EXPORT_FORMAT, version: EXPORT_VERSION, source: { type: 'etcd' }, prefix: Buffer.from(prefix).toString('base64'), revision: 1, createdAt: new Date().toISOString() };
  await pipeline(Readable.from(records()), exportWriter(() => header), createWriteStream(path));
}

/** Every key and value under a prefix, as hex, binary-safe. */
async function etcdScope(etcd: Etcd3, prefix: string): Promise<Map<string, string>> {
  const response = await etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(Buffer.from(prefix)) });
  return new Map(response.kvs.map((kv) => [kv.key.toString('hex'), kv.value.toString('hex')]));
}


const KEYS = 40_000;

describe('a restore interrupted mid-replay rolls back', () => {
  let etcd: Etcd3;
  let dir: string;
  const consul = (): string => requireEnv('KVDR_CONSUL_ADDR');

  beforeAll(async () => {
    etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    dir = await mkdtemp(join(tmpdir(), 'kvdr-rollback-'));
  });
  afterAll(async () => {
    etcd.close();
    await rm(dir, { recursive: true, force: true });
  });

  for (const [force, safety, signal] of [
    [false, true, 'SIGINT'],
    [true, true, 'SIGINT'],
    [true, false, 'SIGTERM'],
  ] as const) {
    const name = `${force ? '--force' : 'an empty scope'}${force && !safety ? ' --no-safety-backup' : ''}, ${signal}`;

    it(`etcd: ${name} → exit 130, the scope byte-identical`, async () => {
      const id = uniqueName('rb-etcd');
      const prefix = `pwx/${id}/`;
      const file = join(dir, `${id}.ndjson`);
      await writeExport(file, prefix, KEYS);
      if (force) {
        for (let i = 0; i < 50; i++) await etcd.put(Buffer.from(`${prefix}old/${i}`)).value(Buffer.from([i, 0, 255, i]));
        await etcd.put(Buffer.concat([Buffer.from(`${prefix}old/bin-`), Buffer.from([0xff, 0xfe])])).value('binary key');
      }
      await etcd.put(`pwx/${id}x/neighbour`).value('outside the scope');
      const before = await etcdScope(etcd, `pwx/${id}`);
      const safetyDir = join(dir, `${id}-safety`);
      const args = ['restore', '--file', file, '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, ...(force ? ['--force'] : []), ...(safety ? [] : ['--no-safety-backup'])];
      const started = async (): Promise<boolean> => (await etcd.getAll().prefix(`${prefix}new/`).count()) > 0;
      const result = await interrupted(args, { KVDR_SAFETY_DIR: safetyDir }, started, signal);
      expect(result.signalled).toBe(true);
      expect(result.code, result.stderr).toBe(ExitCode.Interrupted);
      const last = result.stderr.trim().split('\n').at(-1) ?? '';
      expect(last).toMatch(new RegExp(`^kvdr: restore interrupted by ${signal} after \\d+ keys were written; the scope "${prefix}" was rolled back to the ${force ? 51 : 0} keys it held before \\(digest checked\\)$`));
      expect(await etcdScope(etcd, `pwx/${id}`)).toEqual(before);
      const event = (await trailEvents(safetyDir)).at(-1);
      expect(event?.type).toBe('restore-rolled-back');
      expect(event?.subject).toMatchObject({ scope: prefix, force, exitCode: ExitCode.Interrupted });
      expect(Number(event?.subject['written'])).toBeGreaterThan(0);
      if (force && safety) expect(event?.subject['safetyBackupId']).toMatch(/-safety-backup-/);
      else expect(event?.subject['safetyBackupId']).toBeUndefined();
    });

    it(`Consul: ${name} → exit 130, the scope byte-identical (flags too)`, async () => {
      const id = uniqueName('rb-consul');
      const prefix = `pwx/${id}/`;
      const file = join(dir, `${id}.ndjson`);
      await writeExport(file, prefix, KEYS / 4);
      if (force) for (let i = 0; i < 20; i++) await consulPut(consul(), `${prefix}old/${i}`, Buffer.from([i, 0, 255]), undefined, i);
      await consulPut(consul(), `pwx/${id}x/neighbour`, 'outside the scope');
      const before = await consulPairs(consul(), `pwx/${id}`);
      const safetyDir = join(dir, `${id}-safety`);
      const args = ['restore', '--file', file, '--target', `consul:${consul()}`, ...(force ? ['--force'] : []), ...(safety ? [] : ['--no-safety-backup'])];
      const started = async (): Promise<boolean> => [...(await consulPairs(consul(), `${prefix}new/`)).keys()].length > 0;
      const result = await interrupted(args, { KVDR_SAFETY_DIR: safetyDir }, started, signal);
      expect(result.signalled).toBe(true);
      expect(result.code, result.stderr).toBe(ExitCode.Interrupted);
      expect(result.stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`^kvdr: restore interrupted by ${signal} after \\d+ keys were written; the scope "${prefix}" was rolled back to the ${force ? 20 : 0} keys it held before \\(digest checked\\)$`));
      expect(await consulPairs(consul(), `pwx/${id}`)).toEqual(before);
      expect((await trailEvents(safetyDir)).at(-1)?.type).toBe('restore-rolled-back');
    });
  }

  it('a signal before the first write changes nothing and says so', async () => {
    const id = uniqueName('rb-early');
    const prefix = `pwx/${id}/`;
    const file = join(dir, `${id}.ndjson`);
    await writeExport(file, prefix, KEYS);
    await etcd.put(`${prefix}old/a`).value('keep');
    const before = await etcdScope(etcd, `pwx/${id}`);
    // Sent as soon as the restore says it is reading the artifact: nothing is written yet.
    const planning = (stderr: string): Promise<boolean> => Promise.resolve(stderr.includes('checking the artifact'));
    const result = await interrupted(['--log-level', 'info', 'restore', '--file', file, '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--force'], { KVDR_SAFETY_DIR: join(dir, `${id}-s`) }, planning, 'SIGINT');
    expect(result.code, result.stderr).toBe(ExitCode.Interrupted);
    expect(result.stderr.trim().split('\n').at(-1)).toBe('kvdr: restore interrupted by SIGINT before anything was written; the target is unchanged');
    expect(await etcdScope(etcd, `pwx/${id}`)).toEqual(before);
  });

  for (const withConfig of [true, false]) {
    it(`a target that dies mid-replay under --force: exit 1, one line with the command that puts the scope back, and it does (${withConfig ? 'safety backup by id' : 'the local copy'})`, async () => {
      const victim = await startEtcd();
      const client = connectEtcd({ endpoints: [victim.endpoint] }, {});
      try {
        const id = uniqueName('rb-dies');
        const prefix = `pwx/${id}/`;
        const file = join(dir, `${id}.ndjson`);
        await writeExport(file, prefix, KEYS);
        for (let i = 0; i < 30; i++) await client.put(`${prefix}old/${i}`).value(Buffer.from([i, 255, 0]));
        await client.put(`pwx/${id}x/neighbour`).value('outside');
        const before = await etcdScope(client, `pwx/${id}`);
        const safetyDir = join(dir, `${id}-safety`);
        const config = join(dir, `${id}.yaml`);
        await writeFile(config, `sources: []\nrepositories: [{name: dr, type: fs, path: ${safetyDir}}]\njobs: []\n`);
        const args = [...(withConfig ? ['--config', config] : []), 'restore', '--file', file, '--target', `etcd:${victim.endpoint}`, '--force'];
        // The target dies as soon as the restore's first keys have landed (SIGCONT to kvdr is a no-op).
        const dies = async (): Promise<boolean> => {
          if ((await client.getAll().prefix(`${prefix}new/`).count()) === 0) return false;
          victim.kill();
          return true;
        };
        const result = await interrupted(args, { KVDR_SAFETY_DIR: safetyDir }, dies, 'SIGCONT');
        expect(result.signalled).toBe(true);
        expect(result.code, result.stderr).toBe(ExitCode.Failure);
        const last = result.stderr.trim().split('\n').at(-1) ?? '';
        const command = /put it back with: kvdr (.+?)(?: \(the same keys as safety backup \S+\))?$/.exec(last)?.[1];
        expect(command, last).toBeDefined();
        if (withConfig) expect(command).toMatch(new RegExp(`^--config ${config} restore-from-s3 --backup \\S+-safety-backup-\\S+ --target etcd:${victim.endpoint} --force$`));
        else expect(command).toMatch(new RegExp(`^restore --file \\S+ --prefix ${prefix} --target etcd:${victim.endpoint} --force --no-safety-backup$`));
        expect(last).toMatch(/\d{8}T\d{6}Z-safety-backup-[0-9a-f]{6}/); // the safety backup is named

        await victim.restart();
        const putBack = await kvdr((command as string).split(' '), { KVDR_SAFETY_DIR: safetyDir });
        expect(putBack.code, putBack.stderr).toBe(0);
        expect(await etcdScope(client, `pwx/${id}`)).toEqual(before);
      } finally {
        client.close();
        await victim.stop();
      }
    });
  }

  // In-process faults on the real target: the 20th transaction refused, or a stranger writing into the
  // scope while the restore runs (verification then fails). Both after the first write, both rolled back.
  for (const fault of ['a write refused by the target', 'verification failing']) {
    it(`--force with ${fault}: the scope is put back from the local spool, digest checked, and recorded`, async () => {
      const id = uniqueName('rb-fault');
      const prefix = `pwx/${id}/`;
      const file = join(dir, `${id}.ndjson`);
      await writeExport(file, prefix, 5000);
      for (let i = 0; i < 10; i++) await etcd.put(`${prefix}old/${i}`).value(`before ${i}`);
      const before = await etcdScope(etcd, `pwx/${id}`);
      const real = new EtcdTarget({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] });
      let batches = 0;
      const faulty = Object.assign(Object.create(real) as EtcdTarget, {
        writeBatch: async (records: Parameters<EtcdTarget['writeBatch']>[0]) => {
          const n = ++batches; // several are in flight: this call's own number
          if (fault.startsWith('a write') && n === 20) throw new KvdrError('etcd refused the transaction (injected)');
          await real.writeBatch(records);
          if (!fault.startsWith('a write') && n === 20) await etcd.put(`${prefix}stranger`).value('written meanwhile');
        },
      });
      const safetyDir = join(dir, `${id}-safety`);
      const repository = { store: openStore({ name: 'dr', type: 'fs', path: safetyDir }), config: { name: 'dr', type: 'fs' as const, path: safetyDir } };
      try {
        const err = await restore({
          input: { from: 'file', path: file },
          target: faulty,
          targetSource: { name: 't', type: 'etcd', endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')], stale: false },
          scope: {},
          force: true,
          dryRun: false,
          safetyBackup: false,
          repository,
          logger: quietLogger,
          print: () => undefined,
        }).then(
          () => undefined,
          (e: unknown) => e as KvdrError,
        );
        expect(err).toBeInstanceOf(KvdrError);
        expect(err?.message).toMatch(fault.startsWith('a write') ? /refused the transaction \(injected\)/ : /verification failed: the scope holds 5001 keys, 5000 were restored/);
        expect(err?.message).toMatch(new RegExp(`the scope "${prefix}" was rolled back to the 10 keys it held before \\(digest checked\\)$`));
        expect(err?.exitCode).toBe(fault.startsWith('a write') ? ExitCode.Failure : ExitCode.Integrity);
        expect(await etcdScope(etcd, `pwx/${id}`)).toEqual(before);
        const event = (await trailEvents(safetyDir)).at(-1);
        expect(event?.type).toBe('restore-rolled-back');
        expect(event?.subject).toMatchObject({ force: true, deleted: 10, rolledBack: { keys: 10 } });
      } finally {
        await real.close();
        await repository.store.close();
      }
    });
  }
});

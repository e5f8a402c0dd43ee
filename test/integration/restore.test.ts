import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCatalog } from '../../src/repository/catalog.js';
import { openStore } from '../../src/repository/open-store.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr, runCli } from '../harness/cli.js';
import { consulPairs } from '../harness/consul-instance.js';
import { startEtcd } from '../harness/etcd-instance.js';
import { etcdPairs, etcdState } from '../harness/etcd-state.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { trailEvents } from '../harness/trail.js';
import { PROJECT_ROOT } from '../harness/stack.js';

const OLDER = `${PROJECT_ROOT}test/fixtures/pxdump/pwx_kvdb_2018-05-25T22:57:41Z.dump`;
const NEWER = `${PROJECT_ROOT}test/fixtures/pxdump/pwx_kvdb_2018-05-25T22:59:08Z.dump`;

interface DumpPair {
  Key: string;
  Value: string | null;
}

/** What a dump says each key should hold, as full keys and hex values. */
async function expectedFrom(dump: string, clusterId: string): Promise<Map<string, string>> {
  const pairs = JSON.parse(await readFile(dump, 'utf8')) as DumpPair[];
  return new Map(pairs.map((p) => [`pwx/${clusterId}/${p.Key}`, Buffer.from(p.Value ?? '', 'base64').toString('hex')]));
}


describe('restoring PX dumps', () => {
  let etcd: Etcd3;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const target = (): string => `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`;

  beforeAll(async () => {
    etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    dir = await mkdtemp(join(tmpdir(), 'kvdr-restore-'));
    env = { KVDR_SAFETY_DIR: join(dir, 'safety') };
  });
  afterAll(async () => {
    etcd.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('restores a dump into etcd byte for byte, under pwx/<cluster-id>/', async () => {
    const cluster = uniqueName('px');
    const { code, stdout, stderr } = await kvdr(['restore', '--kvdb_dump_file', NEWER, '--target', target(), '--cluster-id', cluster], env);
    expect(stderr).not.toMatch(/error/i);
    expect(code).toBe(0);
    expect(stdout).toContain('restored 46 keys');
    const restored = await etcdPairs(etcd, `pwx/${cluster}/`);
    expect(restored).toEqual(await expectedFrom(NEWER, cluster));
    // The edge cases of the fixture survived: empty and null values, non-ASCII keys, a 400 kB value.
    expect(restored.get(`pwx/${cluster}/cluster/nil-value`)).toBe('');
    expect(restored.has(`pwx/${cluster}/nodes/ünïcødé/名前`)).toBe(true);
    expect((restored.get(`pwx/${cluster}/storage/large`) ?? '').length).toBe(2 * 300_000);
  });

  it('aborts with exit 3, names what is there, and writes nothing when the scope has keys', async () => {
    const cluster = uniqueName('abort');
    await etcd.put(`pwx/${cluster}/existing/a`).value('keep me');
    await etcd.put(`pwx/${cluster}x/neighbour`).value('not in scope');
    const before = await etcdState(etcd);
    const { code, stderr } = await kvdr(['restore', '--kvdb_dump_file', NEWER, '--target', target(), '--cluster-id', cluster], env);
    expect(code).toBe(ExitCode.ScopeNotEmpty);
    expect(stderr.trim().split('\n').at(-1)).toMatch(new RegExp(`1 keys already exist under "pwx/${cluster}/" \\(e\\.g\\. pwx/${cluster}/existing/a\\); nothing was written\\. Re-run with --force`));
    expect(await etcdState(etcd)).toEqual(before); // same revision: not a single write
  });

  it('--dry-run prints counts per top-level path and writes nothing', async () => {
    const cluster = uniqueName('dry');
    await etcd.put(`pwx/${cluster}/nodes/old`).value('x');
    const before = await etcdState(etcd);
    const { code, stdout } = await kvdr(['restore', '--kvdb_dump_file', OLDER, '--target', target(), '--cluster-id', cluster, '--dry-run'], env);
    expect(code).toBe(0);
    expect(stdout).toContain(`would delete 1 keys under "pwx/${cluster}/" (needs --force)`);
    expect(stdout).toContain(`pwx/${cluster}/nodes/  1`);
    expect(stdout).toMatch(/would write 35 keys/);
    expect(stdout).toContain(`pwx/${cluster}/alerts/  7`);
    expect(await etcdState(etcd)).toEqual(before);
  });

  it('--force takes a safety backup, replaces exactly the scope, and leaves neighbours alone', async () => {
    const cluster = uniqueName('force');
    await etcd.put(`pwx/${cluster}/stale/key`).value('old');
    await etcd.put(`pwx/${cluster}0/neighbour`).value('outside');
    await etcd.put(`pwx/${cluster}`).value('the prefix without its slash');
    const outsideBefore = await etcd.get(`pwx/${cluster}0/neighbour`).exec();
    const { code, stdout } = await kvdr(['restore', '--kvdb_dump_file', OLDER, '--target', target(), '--cluster-id', cluster, '--force'], env);
    expect(code).toBe(0);
    const safetyId = /safety backup (\S+)\)/.exec(stdout)?.[1];
    expect(safetyId).toMatch(/-safety-backup-/);
    expect(await etcdPairs(etcd, `pwx/${cluster}/`)).toEqual(await expectedFrom(OLDER, cluster));
    const outsideAfter = await etcd.get(`pwx/${cluster}0/neighbour`).exec();
    expect(outsideAfter.kvs[0]?.mod_revision).toBe(outsideBefore.kvs[0]?.mod_revision);
    expect(await etcd.get(`pwx/${cluster}`).string()).toBe('the prefix without its slash');

    // The safety backup holds what was replaced, and restores like any backup.
    const config = join(dir, `${uniqueName('cfg')}.yaml`);
    await writeFile(config, `repositories: [{name: safety, type: fs, path: ${join(dir, 'safety')}}]\n`);
    const back = await kvdr(['--config', config, 'restore-from-s3', '--backup', safetyId ?? '', '--target', target(), '--force', '--no-safety-backup']);
    expect(back.stderr).not.toMatch(/kvdr: /);
    expect(back.code).toBe(0);
    expect(await etcdPairs(etcd, `pwx/${cluster}/`)).toEqual(new Map([[`pwx/${cluster}/stale/key`, Buffer.from('old').toString('hex')]]));
  });

  it('records every restore, abort and dry-run in a hash-chained audit trail', async () => {
    const files = (await readdir(join(dir, 'safety', 'audit'))).sort();
    const events = await Promise.all(files.map(async (f) => JSON.parse(await readFile(join(dir, 'safety', 'audit', f), 'utf8')) as { type: string; prev: string; seq: number; subject: { force: boolean; safetyBackupId?: string } }));
    expect(events.map((e) => e.type)).toEqual(['restore', 'restore-aborted', 'restore-dry-run', 'restore', 'restore']);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    const { createHash } = await import('node:crypto');
    for (let i = 1; i < files.length; i++) {
      const previous = await readFile(join(dir, 'safety', 'audit', files[i - 1] as string));
      expect(events[i]?.prev).toBe(createHash('sha256').update(previous).digest('hex'));
    }
    expect(events[3]?.subject.force).toBe(true);
    expect(events[3]?.subject.safetyBackupId).toMatch(/-safety-backup-/);
  });

  it('chooses the freshest of several dumps by KVDBIndex, not by file name, and says why', async () => {
    const misleading = join(dir, 'pwx_kvdb_2030-01-01T00:00:00Z.dump'); // newest name, oldest content
    await writeFile(misleading, await readFile(OLDER));
    const cluster = uniqueName('fresh');
    const { code, stderr } = await kvdr(['restore', '--kvdb_dump_file', misleading, '--kvdb_dump_file', NEWER, '--target', target(), '--cluster-id', cluster], env);
    expect(code).toBe(0);
    expect(stderr).toContain('chose pwx_kvdb_2018-05-25T22:59:08Z.dump: highest KVDBIndex 1125 (others: pwx_kvdb_2030-01-01T00:00:00Z.dump KVDBIndex 1104)');
    expect((await etcdPairs(etcd, `pwx/${cluster}/`)).size).toBe(46);

    const tie = join(dir, 'pwx_kvdb_2018-05-25T23:30:00Z.dump');
    await writeFile(tie, await readFile(NEWER));
    const again = await kvdr(['restore', '--kvdb_dump_file', NEWER, '--kvdb_dump_file', tie, '--target', target(), '--cluster-id', uniqueName('tie')], env);
    expect(again.stderr).toContain('chose pwx_kvdb_2018-05-25T23:30:00Z.dump: KVDBIndex 1125 ties with pwx_kvdb_2018-05-25T22:59:08Z.dump; the later time in its name breaks the tie');
  });

  it('refuses truncated and malformed dumps naming the byte offset, writing nothing', async () => {
    const whole = await readFile(NEWER);
    const truncated = join(dir, 'truncated.dump');
    await writeFile(truncated, whole.subarray(0, 5000));
    const malformed = join(dir, 'malformed.dump');
    const firstGap = whole.indexOf('},{');
    await writeFile(malformed, Buffer.concat([whole.subarray(0, firstGap + 1), whole.subarray(firstGap + 2)])); // a comma missing
    for (const [file, pattern] of [
      [truncated, /ends at byte 5000 inside element \d+, which starts at byte \d+; the file is truncated/],
      [malformed, new RegExp(`malformed JSON at byte ${firstGap + 1}: expected ',' or '\\]' after element 0`)],
    ] as const) {
      const cluster = uniqueName('bad');
      const before = await etcdState(etcd);
      const { code, stderr } = await kvdr(['restore', '--kvdb_dump_file', file, '--target', target(), '--cluster-id', cluster], env);
      expect(code, file).toBe(ExitCode.Integrity);
      expect(stderr.trim().split('\n').at(-1)).toMatch(pattern);
      expect(await etcdState(etcd)).toEqual(before);
      // A failure before any write is still a restore attempt on the record.
      expect((await trailEvents(join(dir, 'safety'))).at(-1)).toMatchObject({ type: 'restore-failed', subject: { file, clusterId: cluster, exitCode: ExitCode.Integrity, error: expect.stringMatching(pattern) as unknown } });
    }
  });

  it('says which input is wrong: not a dump, no cluster id, unreachable target', async () => {
    const notDump = join(dir, 'export.json');
    await writeFile(notDump, '[{"key":"a","flags":0,"value":""}]');
    const wrongKind = await kvdr(['restore', '--kvdb_dump_file', notDump, '--target', target(), '--cluster-id', 'c'], env);
    expect(wrongKind.code).toBe(ExitCode.Usage);
    expect(wrongKind.stderr).toContain('is a consul-export, not a PX dump; use --file');
    const noCluster = await kvdr(['restore', '--kvdb_dump_file', NEWER, '--target', target()], env);
    expect(noCluster.code).toBe(ExitCode.Usage);
    expect(noCluster.stderr).toContain('--cluster-id');
    const badTarget = await kvdr(['restore', '--kvdb_dump_file', NEWER, '--target', 'http://x:1', '--cluster-id', 'c'], env);
    expect(badTarget.code).toBe(ExitCode.Usage);
    const eventsBefore = (await trailEvents(join(dir, 'safety'))).length;
    const down = await kvdr(['--log-level', 'silent', 'restore', '--kvdb_dump_file', NEWER, '--target', 'etcd:http://127.0.0.1:1', '--cluster-id', 'c'], env);
    expect(down.code).toBe(ExitCode.Failure);
    expect(down.stderr.trim()).toMatch(/^kvdr: etcd http:\/\/127\.0\.0\.1:1: cannot count the keys in the scope: cannot reach etcd/);
    const events = await trailEvents(join(dir, 'safety'));
    expect(events).toHaveLength(eventsBefore + 1);
    expect(events.at(-1)).toMatchObject({
      type: 'restore-failed',
      subject: { target: 'etcd:http://127.0.0.1:1', scope: 'pwx/c/', file: NEWER, force: false, written: 0, exitCode: ExitCode.Failure },
    });
    expect(events.at(-1)?.subject['error']).toBe(down.stderr.trim().replace(/^kvdr: /, ''));
  });

  it('refuses --prefix and --to-prefix without a trailing slash before doing anything', async () => {
    const cluster = uniqueName('slash');
    const eventsBefore = (await trailEvents(join(dir, 'safety'))).length;
    for (const [flag, value] of [['--to-prefix', `drill-${cluster}`], ['--prefix', 'nodes']] as const) {
      const { code, stderr } = await kvdr(['restore', '--kvdb_dump_file', NEWER, '--target', target(), '--cluster-id', cluster, flag, value, '--force'], env);
      expect(code).toBe(ExitCode.Usage);
      expect(stderr.trim()).toBe(`kvdr: ${flag} "${value}" must end with '/', or it also covers neighbouring keys such as "${value}2/…"; use ${flag} ${value}/`);
    }
    expect(await etcd.getAll().prefix(`drill-${cluster}`).count()).toBe(0);
    // Bad flags: nothing was attempted, so nothing is recorded.
    expect(await trailEvents(join(dir, 'safety'))).toHaveLength(eventsBefore);
  });

  it('a genuinely empty dump is valid: with --force it restores an empty scope, without it an empty scope stays empty', async () => {
    const empty = join(dir, 'pwx_kvdb_2026-02-02T00:00:00Z.dump');
    await writeFile(empty, '[]');
    const cluster = uniqueName('empty');
    const quiet = await kvdr(['restore', '--kvdb_dump_file', empty, '--target', target(), '--cluster-id', cluster], env);
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stdout).toContain('restored 0 keys');
    await etcd.put(`pwx/${cluster}/old`).value('replaced by nothing');
    await etcd.put(`pwx/${cluster}x/neighbour`).value('stays');
    const forced = await kvdr(['restore', '--kvdb_dump_file', empty, '--target', target(), '--cluster-id', cluster, '--force'], env);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/restored 0 keys into .* after deleting 1/);
    expect(await etcd.getAll().prefix(`pwx/${cluster}/`).count()).toBe(0);
    expect(await etcd.get(`pwx/${cluster}x/neighbour`).string()).toBe('stays');
  });

  it('--force takes a safety backup unless --no-safety-backup says not to', async () => {
    const cluster = uniqueName('no-safety');
    const safetyDir = join(dir, uniqueName('safety'));
    const safetyBackups = async (): Promise<number> => {
      const store = openStore({ name: 'safety', type: 'fs', path: safetyDir });
      try {
        return (await readCatalog(store, { job: 'safety-backup' })).length;
      } finally {
        await store.close();
      }
    };
    const restore = (...extra: string[]): ReturnType<typeof kvdr> =>
      kvdr(['restore', '--kvdb_dump_file', OLDER, '--target', target(), '--cluster-id', cluster, ...extra], { KVDR_SAFETY_DIR: safetyDir });
    expect((await restore()).code).toBe(0);
    const skipped = await restore('--force', '--no-safety-backup');
    expect(skipped.code).toBe(0);
    expect(skipped.stdout).not.toContain('safety backup');
    expect(await safetyBackups()).toBe(0);
    expect((await trailEvents(safetyDir)).at(-1)?.subject['safetyBackupId']).toBeUndefined();

    const taken = await restore('--force');
    expect(taken.code).toBe(0);
    const id = /safety backup (\S+)\)/.exec(taken.stdout)?.[1];
    expect(await safetyBackups()).toBe(1);
    expect((await trailEvents(safetyDir)).at(-1)).toMatchObject({ type: 'restore', subject: { force: true, safetyBackupId: id } });
  });

  it('through the CLI, a target dying mid-replay exits 1 saying how many keys were written and how to put the scope back', async () => {
    const total = 40_000;
    const dump = join(dir, 'pwx_kvdb_2026-01-01T00:00:00Z.dump');
    await writeFile(dump, JSON.stringify(Array.from({ length: total }, (_, i) => ({ Key: `k/${String(i).padStart(6, '0')}`, Value: Buffer.from(`value ${i}`).toString('base64'), KVDBIndex: i + 1 }))));
    const victim = await startEtcd();
    const client = connectEtcd({ endpoints: [victim.endpoint] }, {});
    try {
      const cluster = uniqueName('dies');
      const running = kvdr(['--log-level', 'silent', 'restore', '--kvdb_dump_file', dump, '--target', `etcd:${victim.endpoint}`, '--cluster-id', cluster], env);
      let finished = false;
      void running.finally(() => (finished = true));
      // Kill the target as soon as the first transaction has landed.
      while (!finished && (await client.getAll().prefix(`pwx/${cluster}/`).count()) === 0) await new Promise((r) => setTimeout(r, 20));
      victim.kill();
      const { code, stderr } = await running;
      expect(code).toBe(ExitCode.Failure);
      const message = stderr.trim().split('\n').at(-1) ?? '';
      // The target is gone, so the rollback cannot run: the one line says how to finish once it is back.
      const match = new RegExp(
        `^kvdr: etcd:${victim.endpoint}: the restore stopped after (\\d+) of ${total} keys were written \\(.*\\); the rollback failed too \\(.*\\), ` +
          `so the scope "pwx/${cluster}/" is incomplete — once etcd:${victim.endpoint} is reachable, put it back with: etcdctl --endpoints ${victim.endpoint} del --prefix pwx/${cluster}/$`,
      ).exec(message);
      expect(match, message).not.toBeNull();
      const written = Number(match?.[1]);
      expect(written).toBeGreaterThan(0);
      expect(written).toBeLessThan(total);
      expect((await trailEvents(join(dir, 'safety'))).at(-1)).toMatchObject({ type: 'restore-failed', subject: { file: dump, written, exitCode: ExitCode.Failure } });
    } finally {
      client.close();
      await victim.stop();
    }
  });

  it('restores a dump into Consul, and refuses values Consul cannot hold before writing anything', async () => {
    const consul = requireEnv('KVDR_CONSUL_ADDR');
    const cluster = uniqueName('consul');
    const { code } = await kvdr(['restore', '--kvdb_dump_file', NEWER, '--target', `consul:${consul}`, '--cluster-id', cluster], env);
    expect(code).toBe(0);
    const pairs = await consulPairs(consul, `pwx/${cluster}/`);
    const expected = await expectedFrom(NEWER, cluster);
    expect(new Map([...pairs].map(([k, v]) => [k, v.value.toString('hex')]))).toEqual(expected);

    const huge = join(dir, 'huge.dump');
    await writeFile(huge, JSON.stringify([{ Key: 'small', Value: 'eA==', KVDBIndex: 1 }, { Key: 'huge', Value: Buffer.alloc(600 * 1024, 1).toString('base64'), KVDBIndex: 2 }]));
    const other = uniqueName('huge');
    const refused = await kvdr(['restore', '--kvdb_dump_file', huge, '--target', `consul:${consul}`, '--cluster-id', other], env);
    expect(refused.code).toBe(ExitCode.Usage);
    expect(refused.stderr).toContain(`holds values of at most 524288 bytes; 1 to restore are larger ("pwx/${other}/huge" (record 1, 614400 bytes)); nothing was written`);
    expect((await consulPairs(consul, `pwx/${other}/`)).size).toBe(0);
  });

  describe('px-kvdb-restore drop-in', () => {
    it('reads the cluster id and KVDB from config.json, aborts on existing keys, and --force replaces them', async () => {
      const cluster = uniqueName('drop-in');
      const pxConfig = join(dir, 'config.json');
      const fixture = JSON.parse(await readFile(`${PROJECT_ROOT}test/fixtures/pwx/config.json`, 'utf8')) as Record<string, unknown>;
      await writeFile(pxConfig, JSON.stringify({ ...fixture, clusterid: cluster, kvdb: [target()] }));
      const first = await runCli('px-kvdb-restore', ['run', '--kvdb_dump_file', OLDER, '--px_config', pxConfig], env);
      expect(first.code).toBe(0);
      expect((await etcdPairs(etcd, `pwx/${cluster}/`)).size).toBe(35);
      const second = await runCli('px-kvdb-restore', ['run', '--kvdb_dump_file', NEWER, '--px_config', pxConfig], env);
      expect(second.code).toBe(ExitCode.ScopeNotEmpty);
      expect(second.stderr).toMatch(/^px-kvdb-restore: .*35 keys already exist under/m);
      const forced = await runCli('px-kvdb-restore', ['run', '--kvdb_dump_file', NEWER, '--px_config', pxConfig, '--force'], env);
      expect(forced.code).toBe(0);
      expect(await etcdPairs(etcd, `pwx/${cluster}/`)).toEqual(await expectedFrom(NEWER, cluster));
    });

    it('exits 2 naming the missing config', async () => {
      const { code, stderr } = await runCli('px-kvdb-restore', ['run', '--kvdb_dump_file', OLDER, '--px_config', join(dir, 'nope.json')], env);
      expect(code).toBe(ExitCode.Usage);
      expect(stderr).toContain('nope.json: not found; pass --px_config <path>, or --kvdb and --cluster_id');
    });
  });
});

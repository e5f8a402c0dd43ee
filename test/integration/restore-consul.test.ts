import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr } from '../harness/cli.js';
import { consulPairs, consulPut } from '../harness/consul-instance.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { PROJECT_ROOT } from '../harness/stack.js';

const DUMP = `${PROJECT_ROOT}test/fixtures/pxdump/pwx_kvdb_2018-05-25T22:59:08Z.dump`;

/** The restore rules, proved on the Consul side: what is in Consul before and after, key by key. */
describe('restoring into Consul', () => {
  let consul: string;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const clusters: string[] = [];
  const cluster = (label: string): string => {
    const id = uniqueName(label);
    clusters.push(id);
    return id;
  };
  const restore = (file: string, id: string, ...extra: string[]): ReturnType<typeof kvdr> =>
    kvdr(['restore', '--kvdb_dump_file', file, '--target', `consul:${consul}`, '--cluster-id', id, ...extra], env);

  /** The whole KV store as Consul lists it, values and modify indexes included: equal listings mean nothing changed. */
  const listing = async (): Promise<string> => {
    const response = await fetch(`${consul}/v1/kv/?recurse`);
    return response.status === 404 ? '' : response.text();
  };

  /** Writes a PX dump (keys relative to pwx/<cluster>/) of these pairs. */
  const writeDump = async (name: string, pairs: [string, Buffer][]): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, JSON.stringify(pairs.map(([Key, value], i) => ({ Key, Value: value.toString('base64'), KVDBIndex: i + 1 }))));
    return path;
  };

  const hexPairs = async (prefix: string): Promise<Map<string, string>> =>
    new Map([...(await consulPairs(consul, prefix))].map(([k, v]) => [k, v.value.toString('hex')]));

  beforeAll(async () => {
    consul = requireEnv('KVDR_CONSUL_ADDR');
    dir = await mkdtemp(join(tmpdir(), 'kvdr-restore-consul-'));
    env = { KVDR_SAFETY_DIR: join(dir, 'safety') };
  });
  afterAll(async () => {
    // pwx/<id> without a slash takes the neighbours (pwx/<id>0/…) with it: all of them are this file's.
    for (const id of clusters) await fetch(`${consul}/v1/kv/pwx/${id}?recurse`, { method: 'DELETE' });
    await rm(dir, { recursive: true, force: true });
  });

  it('an aborted restore leaves Consul byte-identical, inside and outside the scope', async () => {
    const id = cluster('abort');
    await consulPut(consul, `pwx/${id}/existing/a`, Buffer.from([0, 1, 2]));
    await consulPut(consul, `pwx/${id}0/neighbour`, 'outside');
    const before = await listing();
    const { code, stderr } = await restore(DUMP, id);
    expect(code).toBe(ExitCode.ScopeNotEmpty);
    expect(stderr.trim()).toMatch(new RegExp(`1 keys already exist under "pwx/${id}/" \\(e\\.g\\. pwx/${id}/existing/a\\); nothing was written\\. Re-run with --force`));
    expect(await listing()).toBe(before);
  });

  it('--force replaces exactly the scope: pwx/<id>0/ and pwx/<id> beside it are untouched', async () => {
    const id = cluster('c1');
    await consulPut(consul, `pwx/${id}/stale/key`, 'old');
    await consulPut(consul, `pwx/${id}0/volumes/v1`, 'neighbour');
    await consulPut(consul, `pwx/${id}`, 'the prefix without its slash');
    const neighbours = async (): Promise<unknown> => {
      const response = await fetch(`${consul}/v1/kv/pwx/${id}?recurse`);
      const pairs = (await response.json()) as { Key: string }[];
      return pairs.filter((p) => !p.Key.startsWith(`pwx/${id}/`));
    };
    const outside = await neighbours();
    const { code, stdout } = await restore(DUMP, id, '--force');
    expect(code).toBe(0);
    expect(stdout).toMatch(/restored 46 keys into consul:.* after deleting 1 \(safety backup \S+-safety-backup-\S+\)/);
    const pairs = JSON.parse(await readFile(DUMP, 'utf8')) as { Key: string; Value: string | null }[];
    expect(await hexPairs(`pwx/${id}/`)).toEqual(new Map(pairs.map((p) => [`pwx/${id}/${p.Key}`, Buffer.from(p.Value ?? '', 'base64').toString('hex')])));
    // Same values and the same ModifyIndex: not rewritten either.
    expect(await neighbours()).toEqual(outside);
  });

  it('round-trips 500 keys, more than one /v1/txn holds, byte-exact', async () => {
    const id = cluster('many');
    const pairs = Array.from({ length: 500 }, (_, i): [string, Buffer] => [`many/${String(i).padStart(3, '0')}`, randomBytes(i % 7 === 0 ? 0 : 1 + (i % 300))]);
    const { code, stdout } = await restore(await writeDump('many.dump', pairs), id);
    expect(code).toBe(0);
    expect(stdout).toContain('restored 500 keys');
    expect(await hexPairs(`pwx/${id}/`)).toEqual(new Map(pairs.map(([k, v]) => [`pwx/${id}/${k}`, v.toString('hex')])));
  });

  it('writes values from 360 KiB up to the 512 KiB limit alone with PUT, byte-exact', async () => {
    const id = cluster('large');
    // Base64 in a /v1/txn body makes such values too big for a transaction (512 KiB a request): Consul refuses them there.
    const tooBigForTxn = await fetch(`${consul}/v1/txn`, {
      method: 'PUT',
      body: JSON.stringify([{ KV: { Verb: 'set', Key: `pwx/${id}/probe`, Value: randomBytes(400 * 1024).toString('base64') } }]),
    });
    expect(tooBigForTxn.ok).toBe(false);
    const pairs: [string, Buffer][] = [
      ['a/small', randomBytes(10)],
      ['b/just-over-360k', randomBytes(360 * 1024 + 1)],
      ['c/small', randomBytes(10)],
      ['d/500k', randomBytes(500 * 1024)],
      ['e/at-the-limit', randomBytes(512 * 1024)],
      ['f/small', randomBytes(10)],
    ];
    const { code, stderr } = await restore(await writeDump('large.dump', pairs), id);
    expect(stderr).not.toMatch(/^kvdr: /m);
    expect(code).toBe(0);
    expect(await hexPairs(`pwx/${id}/`)).toEqual(new Map(pairs.map(([k, v]) => [`pwx/${id}/${k}`, v.toString('hex')])));
  });

  it('a truncated dump writes nothing to Consul', async () => {
    const id = cluster('truncated');
    const whole = await readFile(DUMP);
    const truncated = join(dir, 'truncated.dump');
    await writeFile(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
    const before = await listing();
    const { code, stderr } = await restore(truncated, id);
    expect(code).toBe(ExitCode.Integrity);
    expect(stderr.trim()).toMatch(/the file is truncated/);
    expect(await listing()).toBe(before);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsulTarget } from '../../src/sources/consul/consul-target.js';
import { consulRequest } from '../../src/sources/consul/http.js';
import { keyPath } from '../../src/sources/consul/key-rules.js';
import { startConsul } from '../harness/consul-instance.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { failureOf, kvTargetConformance, largestAccepted } from './kv-target-conformance.js';

interface Pair {
  Key: string;
  Value: string | null;
  Flags: number;
  ModifyIndex: number;
}

/** Every pair under a prefix, read behind the target's back with a `get-tree` transaction: the prefix travels exactly. */
async function pairs(address: string, prefix: string, token?: string): Promise<Pair[]> {
  const response = await fetch(`${address}/v1/txn`, {
    method: 'PUT',
    body: JSON.stringify([{ KV: { Verb: 'get-tree', Key: prefix } }]),
    headers: token ? { 'X-Consul-Token': token } : {},
  });
  if (!response.ok) throw new Error(`get-tree ${prefix}: HTTP ${response.status} ${await response.text()}`);
  return ((await response.json()) as { Results: { KV: Pair }[] | null }).Results?.map((r) => r.KV) ?? [];
}

/** A raw transaction: the key travels in the JSON body exactly. */
async function txn(address: string, ops: object[]): Promise<Response> {
  return fetch(`${address}/v1/txn`, { method: 'PUT', body: JSON.stringify(ops) });
}

async function deleteTree(address: string, prefix: string, token?: string): Promise<void> {
  const response = await fetch(`${address}/v1/txn`, {
    method: 'PUT',
    body: JSON.stringify([{ KV: { Verb: 'delete-tree', Key: prefix } }]),
    headers: token ? { 'X-Consul-Token': token } : {},
  });
  if (!response.ok) throw new Error(`delete-tree ${prefix}: HTTP ${response.status}`);
}

kvTargetConformance('consul', {
  open: async () => {
    const address = requireEnv('KVDR_CONSUL_ADDR');
    const scope = `${uniqueName('kv-target')}/`;
    return {
      target: new ConsulTarget({ endpoints: [address] }),
      scope: Buffer.from(scope),
      revisions: async (prefix) => (await pairs(address, prefix.toString())).map((p) => p.ModifyIndex),
      cleanup: () => deleteTree(address, scope),
    };
  },
  startPrivate: async () => {
    const server = await startConsul();
    return {
      target: new ConsulTarget({ endpoints: [server.address] }, { timeoutMs: 5_000 }),
      kill: () => server.kill(),
      pause: () => server.pause(),
      resume: () => server.resume(),
      stop: () => server.stop(),
    };
  },
  unreachable: (endpoint) => new ConsulTarget({ endpoints: [endpoint] }),
  restricted: async () => {
    const server = await startConsul({ acl: true });
    const token = await server.tokenWith('key_prefix "ok/" { policy = "write" }');
    return {
      target: new ConsulTarget({ endpoints: [server.address], token }),
      allowed: Buffer.from('ok/'),
      denied: Buffer.from('not-ok/x'),
      keysUnder: async (prefix) => (await pairs(server.address, prefix.toString(), server.token)).map((p) => p.Key),
      stop: () => server.stop(),
    };
  },
  invalidKeys: [Buffer.from([0xff, 0xfe]), Buffer.from([0x61, 0xc3, 0x28]), Buffer.from([0xed, 0xa0, 0x80])],
  exactSuffixes: [
    'a//b',
    'sp ace',
    'per%cent%2F%2E%2E',
    'q?x=1&y',
    'hash#frag',
    'plus+',
    'back\\slash"quote',
    'tab\there',
    'line\nbreak\r',
    'nul\u0000byte',
    'del\u007f c1\u0085 nbsp\u00a0 zwsp\u200b ls\u2028',
    'ünïcødé/日本/🙂',
    'replacement\ufffdchar',
    'trailing/',
    `long/${'x'.repeat(10_000)}`,
  ].map((s) => Buffer.from(s)),
  costliestKeyByte: 0x01, // JSON writes it \u0001: six bytes in the transaction body
  flags: true,
});

/**
 * The keys Consul's KV API rejects or alters, found against this Consul: each candidate written with a
 * raw transaction (key in the JSON body) and with a raw `PUT /v1/kv/<key>` (kvdr's escaping), then
 * listed back. refuse() must accept a key only where the path kvdr would use stores it exactly.
 */
describe('consul keys, measured against the real server', () => {
  let address: string;
  const root = `${uniqueName('consul-keys')}/`;
  const small = 16;
  let large: number;
  let target: ConsulTarget;

  beforeAll(() => {
    address = requireEnv('KVDR_CONSUL_ADDR');
    target = new ConsulTarget({ endpoints: [address] });
    large = 400 * 1024; // too large for a transaction body once base64-encoded: kvdr would PUT it alone
    expect(target.refuse(Buffer.from(`${root}k`), large)).toBeUndefined();
  });
  afterAll(async () => {
    await deleteTree(address, root);
    await deleteTree(address, `/${root}`);
    await target.close();
  });

  /** Whether Consul stores `key` exactly: written through `how`, then the whole root listed. */
  const storesExactly = async (key: string, how: 'txn' | 'put'): Promise<{ exact: boolean; status: number }> => {
    const home = key.startsWith('/') ? `/${root}` : root;
    await deleteTree(address, home);
    let status: number;
    if (how === 'txn') {
      status = (await txn(address, [{ KV: { Verb: 'set', Key: key, Value: 'dg==' } }])).status;
    } else {
      const response = await consulRequest({ address }, { method: 'PUT', path: `/kv/${keyPath(key)}`, body: 'v', what: 'probe', permission: '-', accept: [307, 400, 404, 413] });
      status = response.statusCode ?? 0;
      response.resume();
    }
    const listed = (await pairs(address, home)).map((p) => p.Key);
    return { exact: status === 200 && listed.length === 1 && listed[0] === key, status };
  };

  const candidates: [string, string][] = [
    ['a leading "/"', `/${root}x`],
    ['"//"', `${root}a//b`],
    ['a "." segment', `${root}a/./b`],
    ['a ".." segment', `${root}a/../b`],
    ['a final ".."', `${root}a/..`],
    ['"%" and %2E%2E text', `${root}a/%2E%2E/b%`],
    ['"?"', `${root}a?b=1`],
    ['"#"', `${root}a#b`],
    ['a space', `${root}a b`],
    ['a tab', `${root}a\tb`],
    ['a newline', `${root}a\nb`],
    ['a NUL', `${root}a\u0000b`],
    ['DEL', `${root}a\u007fb`],
    ['a C1 control (U+0085)', `${root}a\u0085b`],
    ['a no-break space', `${root}a\u00a0b`],
    ['a zero-width space', `${root}a\u200bb`],
    ['a line separator', `${root}a\u2028b`],
    ['non-ASCII', `${root}ünï/日本/🙂`],
    ['a 100 KiB key', `${root}${'l'.repeat(100 * 1024)}`],
  ];

  it.each(candidates)('%s: refuse() accepts it exactly where Consul stores it exactly', async (_label, key) => {
    const bytes = Buffer.from(key);
    // Small values travel in a transaction: refuse() accepts exactly the keys a transaction stores exactly.
    const inTxn = await storesExactly(key, 'txn');
    expect(target.refuse(bytes, small) === undefined, `txn answered ${inTxn.status}`).toBe(inTxn.exact);
    // Large values travel in a URL: refuse() may be stricter than this Consul, never looser.
    const inUrl = await storesExactly(key, 'put');
    if (target.refuse(bytes, large) === undefined) expect(inUrl.exact, `PUT answered ${inUrl.status}`).toBe(true);
    // And through the target itself, both sizes, whatever it accepts lands at its own bytes.
    for (const size of [small, large]) {
      if (target.refuse(bytes, size) !== undefined) continue;
      const home = key.startsWith('/') ? `/${root}` : root;
      await deleteTree(address, home);
      await target.writeBatch([{ key: bytes, value: Buffer.alloc(size, 'v'), flags: 3 }]);
      expect((await pairs(address, home)).map((p) => [p.Key, p.Flags, Buffer.from(p.Value ?? '', 'base64').length])).toEqual([[key, 3, size]]);
    }
  });

  it('refuses the empty key, as both APIs do', async () => {
    expect(target.refuse(Buffer.alloc(0), 1)).toBe('Consul does not allow an empty key');
    expect((await txn(address, [{ KV: { Verb: 'set', Key: '', Value: 'dg==' } }])).status).toBe(409);
    expect((await fetch(`${address}/v1/kv/`, { method: 'PUT', body: 'v' })).status).toBe(400);
  });

  it('names why in refuse(): the URL path and the segment, the size limit, UTF-8', () => {
    expect(target.refuse(Buffer.from(`${root}a/../b`), large)).toBe(
      `a ${large}-byte value is too large for a transaction body, so it would be written with PUT /v1/kv/<key>, and this key cannot travel exactly in that URL: its ".." path segment would be resolved by the URL`,
    );
    expect(target.refuse(Buffer.from(`${root}a//b`), large)).toMatch(/its "\/\/" would be merged by the URL$/);
    expect(target.refuse(Buffer.from(`${root}a\nb`), large)).toMatch(/non-printable character, which Consul refuses in a URL$/);
    expect(target.refuse(Buffer.from(`${root}k`), 512 * 1024 + 1)).toBe(
      "a 524289-byte value is over Consul's kv_max_value_size of 524288 bytes (if the servers allow more, set maxValueBytes on the source)",
    );
    expect(target.refuse(Buffer.from([0x61, 0xff]), 1)).toMatch(/not valid UTF-8/);
  });

  it('a value Consul 1.20 cannot log (hashicorp/consul#23926) fails its write in one line and leaves nothing', async () => {
    // A raft entry over 512 KiB is split in chunks; a chunk starting with byte 41 (or 41 | 128) is
    // taken for a log-verifier checkpoint and the write fails. Byte 42 shows the size is not the cause.
    const key = Buffer.from(`${root}chunked`);
    const failure = await target.writeBatch([{ key, value: Buffer.alloc(target.maxValueBytes, 41) }]).catch((err: unknown) => err);
    expect(String(failure)).toMatch(/HTTP 500: .*failed updating verifier state/);
    expect(String(failure)).not.toContain('\n');
    expect(await pairs(address, `${root}chunked`)).toEqual([]);
    await target.writeBatch([{ key, value: Buffer.alloc(target.maxValueBytes, 42) }]);
    expect((await pairs(address, `${root}chunked`)).length).toBe(1);
  });

  it('its limits are Consul\'s: kv_max_value_size on a PUT, the body limit on a transaction', async () => {
    const key = `${root}limit`;
    const put = (bytes: number): Promise<number> => fetch(`${address}/v1/kv/${key}`, { method: 'PUT', body: Buffer.alloc(bytes) }).then((r) => r.status);
    expect(await put(target.maxValueBytes)).toBe(200);
    expect(await put(target.maxValueBytes + 1)).toBe(413);
    // A key the URL cannot carry: the largest value refuse() accepts fits one transaction, one base64 group more does not.
    const dotted = Buffer.from(`${root}a/../txn-only`);
    const largest = largestAccepted(target, dotted);
    await target.writeBatch([{ key: dotted, value: Buffer.alloc(largest, 1), flags: 1 }]);
    expect((await pairs(address, `${root}a/`)).map((p) => p.Key)).toEqual([dotted.toString()]);
    const body = (bytes: number): string =>
      `[{"KV":{"Verb":"set","Key":${JSON.stringify(dotted.toString())},"Value":"${Buffer.alloc(bytes, 1).toString('base64')}","Flags":18446744073709551615}}]`;
    expect((await fetch(`${address}/v1/txn`, { method: 'PUT', body: body(largest) })).status).toBe(200);
    expect((await fetch(`${address}/v1/txn`, { method: 'PUT', body: body(largest + 3) })).status).toBe(413);
  });
});

/**
 * The bug a tester found: a key with ".." and a value over 360 KiB went through `PUT /v1/kv/<key>`,
 * the URL resolved the "..", and the value landed on a neighbouring cluster's key.
 */
describe('a write never escapes its scope', () => {
  let address: string;
  let root: string;
  let target: ConsulTarget;
  const neighbour = (): string => `${root}pwx/c2/x`;

  beforeAll(async () => {
    address = requireEnv('KVDR_CONSUL_ADDR');
    root = `${uniqueName('escape')}/`;
    target = new ConsulTarget({ endpoints: [address] });
    const response = await fetch(`${address}/v1/kv/${neighbour()}?flags=5`, { method: 'PUT', body: 'the neighbour' });
    expect(response.ok).toBe(true);
  });
  afterAll(async () => {
    await deleteTree(address, root);
    await target.close();
  });

  const everything = async (): Promise<string> => JSON.stringify(await pairs(address, root));

  it('a large value under pwx/c1/../c2/x is refused before any write; the neighbour is untouched', async () => {
    const before = await everything();
    for (const suffix of ['pwx/c1/../c2/x', 'pwx/c1/%2E%2E/../c2/x', 'pwx/c1/./../c2/x', 'pwx/c1//../c2/x', `pwx/c1/../../../${root}pwx/c2/x`]) {
      const key = Buffer.from(`${root}${suffix}`);
      const value = Buffer.alloc(400 * 1024, 0xee);
      expect(target.refuse(key, value.length), suffix).toMatch(/cannot travel exactly in that URL/);
      const err = await failureOf(target.writeBatch([{ key, value }]));
      expect(err.message).toMatch(/nothing was sent$/);
      expect(err.message).not.toContain('\n');
    }
    expect(await everything()).toBe(before);
  });

  it('a small value under the same key lands at its own bytes, beside the untouched neighbour', async () => {
    const key = `${root}pwx/c1/../c2/x`;
    await target.writeBatch([{ key: Buffer.from(key), value: Buffer.from('restored'), flags: 1 }]);
    const after = await pairs(address, root);
    expect(after.map((p) => [p.Key, Buffer.from(p.Value ?? '', 'base64').toString(), p.Flags]).sort()).toEqual(
      [
        [key, 'restored', 1],
        [neighbour(), 'the neighbour', 5],
      ].sort(),
    );
  });

  it('the URL kvdr builds keeps "..": a URL parser would have resolved it, kvdr sends it escaped', async () => {
    // Why consulRequest never passes a path through a URL parser: WHATWG URLs resolve even %2E%2E.
    expect(new URL(`${address}/v1/kv/${root}pwx/c1/%2E%2E/c2/x`).pathname).toBe(`/v1/kv/${root}pwx/c2/x`);
    const key = `${root}pwx/c1/../c2/y`;
    expect(keyPath(key)).toBe(`${root}pwx/c1/%2E%2E/c2/y`);
    const response = await consulRequest({ address }, { method: 'PUT', path: `/kv/${keyPath(key)}`, body: 'exact', what: 'probe', permission: '-' });
    response.resume();
    expect((await pairs(address, `${root}pwx/c1/`)).map((p) => p.Key)).toContain(key);
    expect((await pairs(address, `${root}pwx/c2/`)).map((p) => p.Key)).toEqual([neighbour()]);
  });

  it('a prefix the URL cannot address exactly is refused by inspectScope, read and deleteScope', async () => {
    const prefix = Buffer.from(`${root}pwx/c1/../c2/`);
    const calls = [() => target.inspectScope(prefix), () => target.deleteScope(prefix), async () => { for await (const r of target.read(prefix)) void r; }];
    for (const call of calls) {
      expect((await failureOf(call())).message).toMatch(/cannot address that prefix exactly \(its "\.\." path segment would be resolved by the URL\); choose another prefix$/);
    }
    expect((await pairs(address, `${root}pwx/c2/`)).map((p) => p.Key)).toEqual([neighbour()]);
  });
});

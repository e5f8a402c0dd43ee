import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KvRecord } from '../../src/formats/record.js';
import { EtcdTarget } from '../../src/sources/etcd/etcd-target.js';
import { ETCD_DEFAULT_MAX_REQUEST_BYTES, varintBytes } from '../../src/sources/etcd/request-size.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { kvTargetConformance, largestAccepted } from './kv-target-conformance.js';

kvTargetConformance('etcd', {
  open: async () => {
    const endpoint = requireEnv('KVDR_ETCD_ENDPOINT');
    const scope = Buffer.from(`${uniqueName('kv-target')}/`);
    const client = new Etcd3({ hosts: [endpoint] });
    return {
      target: new EtcdTarget({ endpoints: [endpoint] }),
      scope,
      revisions: async (prefix) => (await client.getAll().prefix(prefix).exec()).kvs.map((kv) => Number(kv.mod_revision)),
      cleanup: async () => {
        await client.delete().prefix(scope);
        client.close();
      },
    };
  },
  startPrivate: async () => {
    const server = await startEtcd();
    return {
      target: new EtcdTarget({ endpoints: [server.endpoint] }, { timeoutMs: 5_000 }),
      kill: () => server.kill(),
      pause: () => server.pause(),
      resume: () => server.resume(),
      stop: () => server.stop(),
    };
  },
  unreachable: (endpoint) => new EtcdTarget({ endpoints: [endpoint] }, { timeoutMs: 10_000 }),
  restricted: async () => {
    const server = await startEtcd({ rootPassword: 'root-secret' });
    await server.ctl('role', 'add', 'restorer');
    await server.ctl('role', 'grant-permission', 'restorer', '--prefix=true', 'readwrite', 'ok/');
    await server.ctl('user', 'add', 'writer:writer-secret');
    await server.ctl('user', 'grant-role', 'writer', 'restorer');
    return {
      target: new EtcdTarget({ endpoints: [server.endpoint], auth: { username: 'writer', password: 'writer-secret' } }, { env: {} }),
      allowed: Buffer.from('ok/'),
      denied: Buffer.from('not-ok/x'),
      keysUnder: async (prefix) => (await server.ctl('get', '--prefix', '--keys-only', prefix.toString())).split('\n').filter((l) => l !== ''),
      stop: () => server.stop(),
    };
  },
  // No key is invalid to etcd but the empty one; a key too long for any request is.
  invalidKeys: [Buffer.alloc(ETCD_DEFAULT_MAX_REQUEST_BYTES, 'k')],
  exactSuffixes: [
    Buffer.from([0x00]),
    Buffer.from([0x00, 0x01, 0x7f]),
    Buffer.from([0xff, 0xfe, 0xc3, 0x28]), // not UTF-8
    Buffer.from('a//b'),
    Buffer.from('/leading'),
    Buffer.from('sp ace?q=1#frag%20'),
    Buffer.from('line\nbreak\r\t'),
    Buffer.from('ünïcødé/日本/🙂'),
    Buffer.from(`long/${'x'.repeat(10_000)}`),
  ],
  costliestKeyByte: 0xff,
  flags: false,
});

/**
 * The request overhead, measured: binary search for the largest value etcd itself accepts in a
 * one-put Txn, beside the largest refuse() accepts. etcd counts the marshalled InternalRaftRequest;
 * its request id is a varint whose width follows the member id (its low 16 bits are the id's top
 * bits), and refuse() reserves the widest (10 bytes), so the two differ by exactly that reserve.
 */
describe('etcd request limits, measured against the real server', () => {
  let dir: string;
  let small: EtcdInstance;
  const limit = 65_536;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-etcd-limit-'));
    // startEtcd takes a binary: this one is etcd with a smaller --max-request-bytes, as a cluster may run.
    const binary = join(dir, 'etcd-small-requests');
    await writeFile(binary, `#!/bin/sh\nexec etcd --max-request-bytes ${limit} "$@"\n`);
    await chmod(binary, 0o755);
    small = await startEtcd({ binary });
  }, 120_000);
  afterAll(async () => {
    await small.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const serverLargest = async (client: Etcd3, key: Buffer, max: number): Promise<number> => {
    let low = 0;
    let high = max;
    while (low < high) {
      const mid = Math.ceil((low + high) / 2);
      const fits = await client.kv
        .txn({ compare: [], success: [{ request_put: { key, value: Buffer.alloc(mid, 'v') } }], failure: [] })
        .then(() => true, (err: unknown) => {
          if (!/request is too large/.test(String(err))) throw err;
          return false;
        });
      if (fits) low = mid;
      else high = mid - 1;
    }
    return low;
  };

  /** Bytes of the request id varint on this member: (member id & 0xffff) << 48, plus a counter below. */
  const idWidth = async (client: Etcd3): Promise<number> => {
    const [member] = (await client.cluster.memberList({})).members;
    const top = Number(BigInt(member?.ID ?? '0') & 0xffffn);
    return top === 0 ? 8 : varintBytes(top * 2 ** 48);
  };

  const measure = async (endpoint: string, max: number, options: Pick<IOptions, 'auth'> = {}, reserve = 0): Promise<void> => {
    const client = new Etcd3({ hosts: [endpoint], ...options });
    const target = new EtcdTarget({ endpoints: [endpoint], maxRequestBytes: max, ...(options.auth ? { auth: options.auth } : {}) }, { env: {} });
    try {
      const slack = 10 - (await idWidth(client)) + reserve;
      for (const keyLength of [1, 127, 128, 3000, 16_384]) {
        const key = Buffer.alloc(keyLength, 'k');
        const server = await serverLargest(client, key, max);
        const announced = largestAccepted(target, key);
        // Overhead = limit - key - largest value: 31 bytes for a short key with a 9-byte request id.
        expect({ keyLength, gap: server - announced }).toEqual({ keyLength, gap: slack });
        // What refuse() accepts, etcd writes; the first size it refuses is over the limit with the widest id.
        await target.writeBatch([{ key, value: Buffer.alloc(announced, 'v') }]);
      }
      expect(target.maxValueBytes).toBe(largestAccepted(target, Buffer.from('k')));
    } finally {
      client.close();
      await target.close();
    }
  };

  it('at the default --max-request-bytes (1.5 MiB)', async () => {
    const server = await startEtcd();
    try {
      await measure(server.endpoint, ETCD_DEFAULT_MAX_REQUEST_BYTES);
    } finally {
      await server.stop();
    }
  }, 120_000);

  it('at a configured --max-request-bytes, with the full-batch bound checked too', async () => {
    await measure(small.endpoint, limit);
    const target = new EtcdTarget({ endpoints: [small.endpoint], maxRequestBytes: limit }, { env: {} });
    try {
      const { ops, bytes } = target.batchLimits;
      expect(ops).toBe(128);
      const per = Math.floor(bytes / ops);
      const batch: KvRecord[] = Array.from({ length: ops }, (_, i) => {
        const key = Buffer.from(`batch/${String(i).padStart(4, '0')}`);
        const valueBytes = (i === ops - 1 ? bytes - (ops - 1) * per : per) - key.length;
        return { key, value: Buffer.alloc(valueBytes, 0xff) };
      });
      await target.writeBatch(batch);
      // The reserve for framing is small (16 bytes a put, the header, the Txn's own tag), and a batch
      // carrying as many key+value bytes as the limit itself is stopped before it is sent.
      expect(limit - bytes).toBeLessThanOrEqual(18 + 16 * ops);
      const last = batch.at(-1) as KvRecord;
      const overfull = [...batch.slice(0, -1), { key: last.key, value: Buffer.alloc(last.value.length + (limit - bytes), 0xff) }];
      await expect(target.writeBatch(overfull)).rejects.toThrow(/makes a \d+-byte request, over --max-request-bytes 65536; nothing was sent/);
    } finally {
      await target.close();
    }
  }, 120_000);

  it('with authentication: the user name and auth revision count too', async () => {
    const server = await startEtcd({ rootPassword: 'root-secret' });
    try {
      // refuse() reserves a 10-byte auth revision; this cluster's is a one-byte varint.
      await measure(server.endpoint, ETCD_DEFAULT_MAX_REQUEST_BYTES, { auth: { username: 'root', password: 'root-secret' } }, 9);
    } finally {
      await server.stop();
    }
  }, 120_000);

  it('names the limit and the largest value that fits in what refuse() says', () => {
    const target = new EtcdTarget({ endpoints: ['http://127.0.0.1:1'] }, { env: {} });
    const key = Buffer.from('pwx/c1/big');
    const largest = largestAccepted(target, key);
    expect(target.refuse(key, largest + 1)).toBe(
      `a ${largest + 1}-byte value under this 10-byte key makes a 1572865-byte request, over etcd's --max-request-bytes of 1572864 ` +
        `(at most ${largest} value bytes fit; if the cluster allows larger requests, set maxRequestBytes on the source)`,
    );
    expect(target.refuse(Buffer.alloc(0), 1)).toBe('etcd does not allow an empty key');
    return target.close();
  });
});

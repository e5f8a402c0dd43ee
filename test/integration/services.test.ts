import { afterEach, describe, expect, it } from 'vitest';
import { connectConsul, consulAccess } from '../../src/sources/consul/connect.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';

// The harness hands real services to every integration test; these prove they are really there.
describe('real services on loopback', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('round-trips a binary key and value through etcd', async () => {
    const etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    const prefix = `${uniqueName('etcd')}/`;
    cleanups.push(async () => etcd.close(), async () => etcd.delete().prefix(prefix).exec());
    const key = Buffer.concat([Buffer.from(prefix), Buffer.from([0x00, 0xff, 0x10])]);
    const value = Buffer.from([0xde, 0xad, 0x00, 0xbe, 0xef]);
    await etcd.put(key).value(value);
    expect(await etcd.get(key).buffer()).toEqual(value);
    expect(await etcd.getAll().prefix(prefix).count()).toBe(1);
  });

  it('round-trips a key through Consul, which has elected a leader', async () => {
    const consul = connectConsul(consulAccess({ endpoints: [requireEnv('KVDR_CONSUL_ADDR')] }, {}));
    const prefix = `${uniqueName('consul')}/`;
    cleanups.push(() => consul.kv.del({ key: prefix, recurse: true }));
    expect(await consul.status.leader()).toMatch(/^127\.0\.0\.1:\d+$/);
    await consul.kv.set(`${prefix}a`, 'hello consul');
    const got = await consul.kv.get(`${prefix}a`);
    expect(got?.Value).toBe('hello consul');
  });
});

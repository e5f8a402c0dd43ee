import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceConfig } from '../../src/config/schema.js';
import { ConsulLeadership } from '../../src/scheduler/consul-leadership.js';
import { EtcdLeadership, SLOT_KEY_TTL_SECONDS, type ElectedLeadership } from '../../src/scheduler/leadership.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { consulPut, startConsul, type ConsulInstance } from '../harness/consul-instance.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import { uniqueName } from '../harness/namespace.js';
import { tcpRelay } from '../harness/tcp-relay.js';
import { waitFor } from '../harness/wait.js';

function sourceFor(type: 'etcd' | 'consul', endpoint: string): SourceConfig {
  const config = testConfig({ sources: [{ name: 's', type, endpoints: [endpoint] }], repositories: [{ name: 'r', type: 'fs', path: '/tmp/unused' }], jobs: [] });
  return config.sources[0] as SourceConfig;
}

/** How long after its backend stops answering a leader still believes it leads. */
async function stepDownMs(replica: ElectedLeadership, pause: () => void, limitMs: number): Promise<number> {
  const paused = Date.now();
  pause();
  await waitFor(() => Promise.resolve(!replica.isLeader()), 'the leader to step down', limitMs * 3);
  return Date.now() - paused;
}

describe('leader election and slot claims (etcd)', () => {
  let etcd: EtcdInstance;
  beforeAll(async () => {
    etcd = await startEtcd();
  });
  afterAll(async () => {
    etcd.resume();
    await etcd.stop();
  });

  it('claims a slot once across replicas, again for the same replica (retries), with keys that expire on their own', async () => {
    const key = uniqueName('election');
    const a = new EtcdLeadership(sourceFor('etcd', etcd.endpoint), key, 5, quietLogger);
    const b = new EtcdLeadership(sourceFor('etcd', etcd.endpoint), key, 5, quietLogger);
    const slot = new Date('2026-11-24T10:00:00Z');
    try {
      expect(await a.claimSlot('nightly', slot)).toBe(true);
      expect(await a.claimSlot('nightly', slot)).toBe(true);
      expect(await b.claimSlot('nightly', slot)).toBe(false);
      expect(await b.claimSlot('hourly', slot)).toBe(true);

      const client = connectEtcd({ endpoints: [etcd.endpoint] }, {});
      try {
        const range = await client.get(`${key}/slots/nightly/${slot.toISOString()}`).exec();
        const lease = range.kvs[0]?.lease ?? '0';
        const ttl = Number((await client.leaseClient.leaseTimeToLive({ ID: lease })).TTL);
        expect(ttl).toBeGreaterThan(SLOT_KEY_TTL_SECONDS - 120);
        expect(ttl).toBeLessThanOrEqual(SLOT_KEY_TTL_SECONDS);
      } finally {
        client.close();
      }
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a slot claim that failed while etcd was unreachable does not fail the claims after it', async () => {
    const relay = await tcpRelay(Number(new URL(etcd.endpoint).port));
    const replica = new EtcdLeadership(sourceFor('etcd', `http://127.0.0.1:${relay.port}`), uniqueName('election'), 5, quietLogger);
    try {
      relay.cut();
      await expect(replica.claimSlot('nightly', new Date('2026-11-24T11:00:00Z'))).rejects.toThrow();
      relay.restore();
      // The client's own backoff may hold a call or two; a poisoned lease would fail for an hour.
      let claimed = false;
      await waitFor(async () => (claimed = await replica.claimSlot('nightly', new Date('2026-11-24T12:00:00Z')).catch(() => false)), 'a claim to go through once etcd answers', 30_000);
      expect(claimed).toBe(true);
    } finally {
      await replica.close();
      await relay.close();
    }
  });

  it('a leader whose etcd stops answering stops scheduling within the TTL, and leads again when it answers', async () => {
    const ttl = 4;
    const leader = new EtcdLeadership(sourceFor('etcd', etcd.endpoint), uniqueName('election'), ttl, quietLogger);
    try {
      leader.start();
      await waitFor(() => Promise.resolve(leader.isLeader()), 'the only replica to be elected');
      expect(await stepDownMs(leader, () => etcd.pause(), ttl * 1000)).toBeLessThanOrEqual(ttl * 1000);
      etcd.resume();
      await waitFor(() => Promise.resolve(leader.isLeader()), 'leadership to come back', 60_000);
    } finally {
      etcd.resume();
      await leader.close();
    }
    expect(leader.isLeader()).toBe(false);
  });
});

describe('leader election and slot claims (Consul)', () => {
  let consul: ConsulInstance;
  beforeAll(async () => {
    consul = await startConsul();
  });
  afterAll(async () => {
    consul.resume();
    await consul.stop();
  });

  it('claims a slot once across replicas, again for the same replica, and sweeps slot keys older than a day', async () => {
    const key = uniqueName('election');
    const stale = `${key}/slots/nightly/2026-01-01T00:00:00.000Z`;
    await consulPut(consul.address, stale, 'an old replica');
    const a = new ConsulLeadership(sourceFor('consul', consul.address), key, 10, quietLogger);
    const b = new ConsulLeadership(sourceFor('consul', consul.address), key, 10, quietLogger);
    const slot = new Date();
    try {
      expect(await a.claimSlot('nightly', slot)).toBe(true);
      expect(await a.claimSlot('nightly', slot)).toBe(true);
      expect(await b.claimSlot('nightly', slot)).toBe(false);
      const keys = (await (await fetch(`${consul.address}/v1/kv/${key}/slots/?keys`)).json()) as string[];
      expect(keys).toEqual([`${key}/slots/nightly/${slot.toISOString()}`]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a leader whose Consul stops answering stops scheduling within the TTL, and leads again when it answers', async () => {
    const ttl = 10;
    const leader = new ConsulLeadership(sourceFor('consul', consul.address), uniqueName('election'), ttl, quietLogger);
    try {
      leader.start();
      await waitFor(() => Promise.resolve(leader.isLeader()), 'the only replica to be elected');
      expect(await stepDownMs(leader, () => consul.pause(), ttl * 1000)).toBeLessThanOrEqual(ttl * 1000);
      consul.resume();
      await waitFor(() => Promise.resolve(leader.isLeader()), 'leadership to come back', 90_000);
    } finally {
      consul.resume();
      await leader.close();
    }
  }, 150_000);
});

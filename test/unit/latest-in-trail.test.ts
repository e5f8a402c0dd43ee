import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendAuditEvent, auditKey } from '../../src/audit/audit-log.js';
import { LatestInTrail } from '../../src/audit/latest-in-trail.js';
import { FsStore } from '../../src/repository/fs-store.js';
import type { ObjectStore } from '../../src/repository/object-store.js';

/** The real store, counting the objects read from it. */
function counting(store: ObjectStore): { store: ObjectStore; gets: () => number } {
  let gets = 0;
  const counted: ObjectStore = Object.create(store) as ObjectStore;
  counted.get = (key) => {
    gets++;
    return store.get(key);
  };
  return { store: counted, gets: () => gets };
}

describe('the newest matching event of the trail', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-latest-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('walks the trail once, then reads only what was appended since', async () => {
    const store = new FsStore({ path: dir });
    let clock = Date.parse('2026-11-24T00:00:00Z');
    const at = (): Date => new Date((clock += 60_000));
    for (let i = 0; i < 20; i++) await appendAuditEvent(store, 'drill', { drill: i % 2 ? 'weekly' : 'other', result: 'ok' }, at);
    const latest = new LatestInTrail((e) => e.type === 'drill' && e.subject['drill'] === 'weekly');
    const first = counting(store);
    expect((await latest.refresh(first.store))?.toISOString()).toBe('2026-11-24T00:20:00.000Z');
    expect(first.gets()).toBe(20);

    await appendAuditEvent(store, 'drill', { drill: 'weekly', result: 'ok' }, at);
    await appendAuditEvent(store, 'backup', { job: 'hourly' }, at);
    const second = counting(store);
    expect((await latest.refresh(second.store))?.toISOString()).toBe('2026-11-24T00:21:00.000Z');
    expect(second.gets()).toBe(3); // the two new events, and the probe that finds no third
    const third = counting(store);
    expect((await latest.refresh(third.store))?.toISOString()).toBe('2026-11-24T00:21:00.000Z');
    expect(third.gets()).toBe(1); // just the probe
  });
  it('passes over a damaged event and goes on reading after it', async () => {
    const store = new FsStore({ path: dir });
    let clock = Date.parse('2026-11-24T00:00:00Z');
    const at = (): Date => new Date((clock += 60_000));
    await appendAuditEvent(store, 'drill', { drill: 'weekly', result: 'ok' }, at);
    const latest = new LatestInTrail((e) => e.type === 'drill' && e.subject['drill'] === 'weekly');
    expect((await latest.refresh(store))?.toISOString()).toBe('2026-11-24T00:01:00.000Z');
    await store.put(auditKey(2), Buffer.from('{"seq": 2, "damaged'));
    const after = await appendAuditEvent(store, 'drill', { drill: 'weekly', result: 'ok' }, at);
    expect(after.seq).toBe(3);
    expect((await latest.refresh(store))?.toISOString()).toBe(after.time);
  });
});


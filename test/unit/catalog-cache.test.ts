import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readCatalog } from '../../src/repository/catalog.js';
import { FsStore } from '../../src/repository/fs-store.js';
import { manifestKey } from '../../src/repository/layout.js';
import { writeManifest } from '../../src/repository/manifest-store.js';
import { sampleManifest } from '../harness/manifests.js';

/** A filesystem repository that counts the objects it is asked to read. */
class CountingStore extends FsStore {
  reads: string[] = [];
  override get(key: string): Promise<Readable> {
    this.reads.push(key);
    return super.get(key);
  }
}

describe('the catalog reads each manifest once', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-catalog-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads only new or changed manifests on later looks, and forgets deleted ones', async () => {
    const store = new CountingStore({ path: dir });
    const a = sampleManifest({ id: '20261123T010000Z-j-aaaaaa', job: 'j', finishedAt: '2026-11-23T01:00:05.000Z' });
    const b = sampleManifest({ id: '20261123T020000Z-j-bbbbbb', job: 'j', finishedAt: '2026-11-23T02:00:05.000Z' });
    await writeManifest(store, a);
    await writeManifest(store, b);
    expect((await readCatalog(store)).map((m) => m.id)).toEqual([a.id, b.id]);
    expect(store.reads).toHaveLength(2);

    // A second process-wide look (another store object, as each run opens its own): no reads.
    const again = new CountingStore({ path: dir });
    expect((await readCatalog(again, { job: 'j' })).map((m) => m.id)).toEqual([a.id, b.id]);
    expect(again.reads).toEqual([]);

    // A new manifest: only it is read.
    const c = sampleManifest({ id: '20261123T030000Z-j-cccccc', job: 'j', finishedAt: '2026-11-23T03:00:05.000Z' });
    await writeManifest(store, c);
    store.reads = [];
    expect((await readCatalog(store)).map((m) => m.id)).toEqual([a.id, b.id, c.id]);
    expect(store.reads).toEqual([manifestKey('j', c.id)]);

    // One overwritten in place (another size): read again, and what it now says is what the catalog says.
    await writeFile(join(dir, manifestKey('j', b.id)), `${JSON.stringify({ ...b, records: 123456 })}\n`);
    store.reads = [];
    expect((await readCatalog(store)).find((m) => m.id === b.id)?.records).toBe(123456);
    expect(store.reads).toEqual([manifestKey('j', b.id)]);

    // Deleted: gone from the catalog, and a caller's copy changed in place does not change the next answer.
    await store.delete(manifestKey('j', a.id));
    const now = await readCatalog(store);
    expect(now.map((m) => m.id)).toEqual([b.id, c.id]);
    (now[0] as { records?: number }).records = -1;
    expect((await readCatalog(store))[0]?.records).toBe(123456);
  });

  it('still refuses a damaged manifest, every time', async () => {
    const store = new CountingStore({ path: dir });
    await writeManifest(store, sampleManifest({ id: '20261123T010000Z-k-aaaaaa', job: 'k' }));
    await writeFile(join(dir, manifestKey('k', '20261123T020000Z-k-bbbbbb')), '{not json');
    await expect(readCatalog(store)).rejects.toThrow(/not valid JSON/);
    await expect(readCatalog(store)).rejects.toThrow(/not valid JSON/);
  });
});

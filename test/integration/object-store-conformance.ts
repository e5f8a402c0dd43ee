import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectExistsError, ObjectNotFoundError } from '../../src/util/errors.js';
import type { ObjectStore } from '../../src/repository/object-store.js';
import { readAll } from '../../src/util/streams.js';

export interface StoreUnderTest {
  store: ObjectStore;
  /** Removes everything the test wrote (bucket, directory). */
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

/** The one suite every ObjectStore backend must pass. */
export function objectStoreConformance(backend: string, open: () => Promise<StoreUnderTest>): void {
  describe(`ObjectStore conformance: ${backend}`, () => {
    let subject: StoreUnderTest;
    let store: ObjectStore;

    beforeEach(async () => {
      subject = await open();
      store = subject.store;
    });
    afterEach(async () => {
      await store.close();
      await store.close(); // close() is idempotent
      await subject.cleanup();
    });

    it('streams a multi-part object in and out byte for byte', async () => {
      const size = 12 * MiB + 123;
      const { stream, digest } = randomStream(size, 64 * 1024);
      const put = await store.put('backups/job/big.bin', stream);
      expect(put.size).toBe(size);
      expect(await sha256Of(await store.get('backups/job/big.bin'))).toBe(digest());
    });

    it('stores a Buffer and reports its size through head', async () => {
      await store.put('a/b.txt', Buffer.from('hello'));
      const info = await store.head('a/b.txt');
      expect(info?.size).toBe(5);
      expect(info?.lastModified.getTime()).toBeGreaterThan(Date.now() - 10 * 60_000);
      expect(await store.head('a/missing.txt')).toBeUndefined();
    });

    it('refuses to overwrite: artifacts are write-once', async () => {
      await store.put('once.txt', Buffer.from('first'));
      await expect(store.put('once.txt', Buffer.from('second'))).rejects.toBeInstanceOf(ObjectExistsError);
      expect((await readAll(await store.get('once.txt'))).toString()).toBe('first');
    });

    it('lets exactly one of two concurrent writers of one key win', async () => {
      const results = await Promise.allSettled([
        store.put('race.txt', Buffer.from('one')),
        store.put('race.txt', Buffer.from('two')),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const loser = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(loser.reason).toBeInstanceOf(ObjectExistsError);
      expect(['one', 'two']).toContain((await readAll(await store.get('race.txt'))).toString());
    });

    it('leaves no object behind when the body fails mid-stream', async () => {
      let chunks = 0;
      const failing = new Readable({
        read() {
          this.push(randomBytes(MiB));
          if (++chunks === 7) this.destroy(new Error('source died'));
        },
      });
      await expect(store.put('broken.bin', failing)).rejects.toThrow();
      expect(await store.head('broken.bin')).toBeUndefined();
      expect(await keys(store, '')).not.toContain('broken.bin');
    });

    it('reports a missing object as ObjectNotFoundError', async () => {
      await expect(store.get('nope/none.bin')).rejects.toBeInstanceOf(ObjectNotFoundError);
    });

    it('lists under a prefix in byte order of the key', async () => {
      for (const key of ['p/a/x', 'p/a-b', 'p/a.b', 'p/b', 'p/a/y/z', 'q/other', 'pp']) {
        await store.put(key, Buffer.from(key));
      }
      expect(await keys(store, 'p/')).toEqual(['p/a-b', 'p/a.b', 'p/a/x', 'p/a/y/z', 'p/b']);
      expect(await keys(store, 'p/a')).toEqual(['p/a-b', 'p/a.b', 'p/a/x', 'p/a/y/z']);
      expect(await keys(store, 'p')).toEqual(['p/a-b', 'p/a.b', 'p/a/x', 'p/a/y/z', 'p/b', 'pp']);
      expect(await keys(store, 'zzz/')).toEqual([]);
    });

    it('lists more than one page (1,000+ objects)', async () => {
      const count = 1_050;
      const expected = Array.from({ length: count }, (_, i) => `many/${String(i).padStart(5, '0')}`);
      await inBatches(expected, 32, (key) => store.put(key, Buffer.from(key)));
      await store.put('many-not/x', Buffer.from('x'));
      const listed = await keys(store, 'many/');
      expect(listed).toEqual(expected);
    });

    it('deletes idempotently', async () => {
      await store.put('gone.txt', Buffer.from('x'));
      await store.delete('gone.txt');
      await store.delete('gone.txt');
      expect(await store.head('gone.txt')).toBeUndefined();
    });

    it('rejects keys that could escape the repository', async () => {
      for (const key of ['../x', '/abs', 'a//b', 'a/./b', 'dir/', '']) {
        await expect(store.put(key, Buffer.from('x')), key).rejects.toBeInstanceOf(TypeError);
      }
    });
  });
}

export function randomStream(size: number, chunk: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  let left = size;
  const stream = new Readable({
    read() {
      if (left === 0) return void this.push(null);
      const part = randomBytes(Math.min(chunk, left));
      left -= part.length;
      hash.update(part);
      this.push(part);
    },
  });
  return { stream, digest: () => hash.digest('hex') };
}

export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function keys(store: ObjectStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const info of store.list(prefix)) out.push(info.key);
  return out;
}

async function inBatches<T>(items: T[], width: number, action: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(action));
}

import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KvRecord } from '../../src/formats/record.js';
import type { KvTarget } from '../../src/sources/kv-target.js';
import { KvdrError } from '../../src/util/errors.js';
import { freePorts } from '../harness/ports.js';

/** A target on the shared real service, confined to a private key prefix. */
export interface TargetUnderTest {
  target: KvTarget;
  /** This test's own prefix, ending in `/`; every key the test writes starts with it. */
  scope: Buffer;
  /** The modify revision / index of every key under a prefix, read behind the target's back. */
  revisions(prefix: Buffer): Promise<number[]>;
  /** Removes everything under the scope. */
  cleanup(): Promise<void>;
}

/** A server of the test's own, to kill or freeze. Its target gives up on a silent call after 5 s. */
export interface PrivateServer {
  target: KvTarget;
  /** SIGKILL. */
  kill(): void;
  /** SIGSTOP / SIGCONT: a server that keeps its connections open and never answers. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

/** A private server whose target may write under `allowed` but not the key `denied`. */
export interface RestrictedServer {
  target: KvTarget;
  allowed: Buffer;
  denied: Buffer;
  /** Every key under a prefix, read with full rights. */
  keysUnder(prefix: Buffer): Promise<string[]>;
  stop(): Promise<void>;
}

export interface KvTargetBackend {
  open(): Promise<TargetUnderTest>;
  startPrivate(): Promise<PrivateServer>;
  /** A target on this http://127.0.0.1:<port> endpoint, where nothing listens. */
  unreachable(endpoint: string): KvTarget;
  restricted(): Promise<RestrictedServer>;
  /** Keys (whole keys, not under the scope) that refuse() must name besides the empty key. */
  invalidKeys: Buffer[];
  /** Key suffixes the target must store exactly as their bytes say. */
  exactSuffixes: Buffer[];
  /** The key byte that costs the target the most request bytes (JSON escapes for Consul): the batch test's worst case. */
  costliestKeyByte: number;
  /** Consul carries flags; etcd does not. */
  flags: boolean;
}

/** The one suite every KvTarget implementation passes, against its real server. */
export function kvTargetConformance(name: string, backend: KvTargetBackend): void {
  describe(`KvTarget conformance: ${name}`, () => {
    let subject: TargetUnderTest;
    let target: KvTarget;
    let scope: Buffer;
    const key = (suffix: string | Buffer): Buffer => Buffer.concat([scope, Buffer.from(suffix)]);
    const record = (suffix: string | Buffer, value: Buffer, flags?: number): KvRecord => ({
      key: key(suffix),
      value,
      ...(backend.flags && flags !== undefined ? { flags } : {}),
    });
    const readAll = async (prefix: Buffer): Promise<KvRecord[]> => {
      const out: KvRecord[] = [];
      for await (const r of target.read(prefix)) out.push(r);
      return out;
    };
    const hexMap = (records: KvRecord[]): Map<string, string> => new Map(records.map((r) => [r.key.toString('hex'), r.value.toString('hex')]));

    beforeEach(async () => {
      subject = await backend.open();
      target = subject.target;
      scope = subject.scope;
    });
    afterEach(async () => {
      await subject.cleanup();
      await target.close();
    });

    it('announces honest limits: the largest value refuse() accepts is written, one byte more is refused', async () => {
      expect(target.refuse(Buffer.from('k'), target.maxValueBytes)).toBeUndefined();
      expect(target.refuse(Buffer.from('k'), target.maxValueBytes + 1)).toMatch(/\S/);
      for (const suffix of ['short', `long/${'k'.repeat(3000)}`]) {
        const k = key(suffix);
        const largest = largestAccepted(target, k);
        expect(largest, suffix).toBeGreaterThan(300 * 1024);
        expect(target.refuse(k, largest + 1), suffix).toMatch(/\S/);
        const value = randomNearLimit(largest);
        await target.writeBatch([{ key: k, value }]);
        const [back] = await readAll(k);
        expect(back?.key.equals(k)).toBe(true);
        expect(back?.value.equals(value)).toBe(true);
        // The last check inside writeBatch: a record refuse() names is never sent.
        await expect(target.writeBatch([{ key: k, value: randomBytes(largest + 1) }])).rejects.toThrow(/nothing was sent/);
        expect((await readAll(k))[0]?.value.equals(value)).toBe(true);
      }
    });

    it('refuses the empty key and keys it cannot hold, and never writes them', async () => {
      expect(target.refuse(Buffer.alloc(0), 1)).toMatch(/empty key/);
      for (const bad of backend.invalidKeys) {
        expect(target.refuse(bad, 1), bad.toString('hex')).toMatch(/\S/);
        expect(target.refuse(Buffer.concat([scope, bad]), 1), bad.toString('hex')).toMatch(/\S/);
      }
      const batch = [record('fine', Buffer.from('x')), { key: Buffer.alloc(0), value: Buffer.from('x') }];
      const err = await failureOf(target.writeBatch(batch));
      expect(err).toBeInstanceOf(KvdrError);
      expect(err.message).not.toContain('\n');
      expect(await readAll(scope)).toEqual([]);
    });

    it.each([
      ['the values', 'values'],
      ['keys of the costliest byte', 'keys'],
    ] as const)('writes a full batch (batchLimits ops and bytes, carried by %s) in one transaction', async (_label, carrier) => {
      const { ops, bytes } = target.batchLimits;
      const per = Math.floor(bytes / ops);
      const batch: KvRecord[] = [];
      for (let i = 0; i < ops; i++) {
        const share = i === ops - 1 ? bytes - (ops - 1) * per : per;
        const name = Buffer.from(`${carrier}/${String(i).padStart(4, '0')}/`);
        const filler = share - scope.length - name.length;
        batch.push(
          carrier === 'values'
            ? record(name, randomBytes(filler), i)
            : record(Buffer.concat([name, Buffer.alloc(filler, backend.costliestKeyByte)]), Buffer.alloc(0), i),
        );
      }
      expect(batch.reduce((sum, r) => sum + r.key.length + r.value.length, 0)).toBe(bytes);
      await target.writeBatch(batch);
      const back = await readAll(scope);
      expect(hexMap(back)).toEqual(hexMap(batch));
      expect(new Set(await subject.revisions(scope)).size).toBe(1); // one transaction: one revision
    });

    it('deletes exactly its prefix: pwx/c1/ never touches pwx/c10/x or pwx/c1', async () => {
      const keys = ['pwx/c1/a', 'pwx/c1/b/c', 'pwx/c1/', 'pwx/c10/x', 'pwx/c1', 'pwx/c0/y', 'pwx/c1.x'];
      await target.writeBatch(keys.map((k) => record(k, Buffer.from(k))));
      expect(await target.deleteScope(key('pwx/c1/'))).toBe(3);
      expect((await readAll(scope)).map((r) => r.key.subarray(scope.length).toString()).sort()).toEqual(['pwx/c0/y', 'pwx/c1', 'pwx/c1.x', 'pwx/c10/x']);
      expect(await target.deleteScope(key('pwx/c1/'))).toBe(0);
    });

    it('reads back exactly the bytes written: keys, values and flags', async () => {
      const written = backend.exactSuffixes.map((suffix, i) => record(suffix, Buffer.concat([randomBytes(32), Buffer.from([0, 0xff, 0x0a, 0x0d])]), backend.flags ? 2 ** 32 + i : undefined));
      written.push(record('empty-value', Buffer.alloc(0), 7));
      for (const r of written) expect(target.refuse(r.key, r.value.length), r.key.toString('hex')).toBeUndefined();
      await target.writeBatch(written);
      const back = await readAll(scope);
      expect(hexMap(back)).toEqual(hexMap(written));
      if (backend.flags) expect(new Map(back.map((r) => [r.key.toString('hex'), r.flags]))).toEqual(new Map(written.map((r) => [r.key.toString('hex'), r.flags])));
    });

    it('reads the same records in the same order with split hints as without (a hint only makes reading cheaper)', async () => {
      const records = Array.from({ length: 60 }, (_, i) => record(`k/${String(i).padStart(3, '0')}`, Buffer.from([i, 255 - i])));
      await target.writeBatch(records.slice(0, 30));
      await target.writeBatch(records.slice(30));
      const plain = await readAll(scope);
      // Splits on keys that exist, on one that does not, and at the very first key.
      const splits = [key('k/000'), key('k/010'), key('k/0255'), key('k/041'), key('k/059')];
      const hinted: KvRecord[] = [];
      for await (const r of target.read(scope, { splits })) hinted.push(r);
      expect(hinted.map((r) => r.key.toString('hex'))).toEqual(plain.map((r) => r.key.toString('hex')));
      expect(hexMap(hinted)).toEqual(hexMap(records));
    });

    it('writes a key with "." and ".." segments at its own bytes, never at the key they resolve to', async () => {
      const tricky = ['a/../b', 'a/./c', 'a/..', 'a/%2E%2E/d', 'a/%2e/e'];
      await target.writeBatch(tricky.map((k) => record(k, Buffer.from(k))));
      const back = await readAll(scope);
      expect(back.map((r) => r.key.subarray(scope.length).toString()).sort()).toEqual([...tricky].sort());
      for (const r of back) expect(r.value.toString()).toBe(r.key.subarray(scope.length).toString());
    });

    it('counts a scope and names a few of its keys', async () => {
      expect(await target.inspectScope(key('none/'))).toEqual({ count: 0, examples: [] });
      const keys = Array.from({ length: 7 }, (_, i) => `in/${i}`);
      await target.writeBatch([...keys, 'in', 'inside'].map((k) => record(k, Buffer.from('v'))));
      const seen = await target.inspectScope(key('in/'));
      expect(seen.count).toBe(7);
      expect(seen.examples.length).toBeGreaterThan(0);
      expect(seen.examples.length).toBeLessThanOrEqual(5);
      for (const example of seen.examples) expect(keys.map((k) => key(k).toString())).toContain(example);
    });
  });

  describe(`KvTarget conformance: ${name}, failures`, () => {
    it('writes a batch all or nothing: one op the server refuses, none of it lands', async () => {
      const server = await backend.restricted();
      try {
        const good = (s: string): KvRecord => ({ key: Buffer.concat([server.allowed, Buffer.from(s)]), value: Buffer.from(s) });
        await server.target.writeBatch([good('before')]); // the rights are real: allowed keys can be written
        const err = await failureOf(server.target.writeBatch([good('a'), good('b'), { key: server.denied, value: Buffer.from('x') }, good('c')]));
        expect(err).toBeInstanceOf(KvdrError);
        expect(err.message).not.toContain('\n');
        expect(err.message).toMatch(/permission denied/i);
        expect(await server.keysUnder(server.allowed)).toEqual([Buffer.concat([server.allowed, Buffer.from('before')]).toString()]);
        expect(await server.keysUnder(server.denied)).toEqual([]);
      } finally {
        await server.target.close();
        await server.stop();
      }
    });

    it('fails in one line, without hanging, when the server dies mid-write; close() still works', async () => {
      const server = await backend.startPrivate();
      const t = server.target;
      try {
        const batch = (n: number): KvRecord[] =>
          Array.from({ length: t.batchLimits.ops }, (_, i) => ({ key: Buffer.from(`dying/${n}/${i}`), value: randomBytes(256) }));
        await t.writeBatch(batch(0));
        let confirmed = 0;
        const writes = Array.from({ length: 200 }, (_, n) =>
          t.writeBatch(batch(n + 1)).then(() => {
            confirmed++;
          }),
        );
        // Watched from the start: a write can fail before the kill (Consul answers 429 to 200 connections at once).
        const settling = Promise.allSettled(writes);
        await new Promise((r) => setTimeout(r, 30));
        server.kill();
        const settled = await withinSeconds(60, settling);
        const failures = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as Error);
        expect(failures.length).toBeGreaterThan(0);
        expect(confirmed + failures.length).toBe(200);
        for (const err of failures) {
          expect(err).toBeInstanceOf(KvdrError);
          expect(err.message).not.toContain('\n');
        }
        const after = await withinSeconds(60, failureOf(t.writeBatch(batch(999))));
        expect(after).toBeInstanceOf(KvdrError);
      } finally {
        await withinSeconds(10, t.close());
        await server.stop();
      }
    }, 180_000);

    it('fails in one line, without hanging, when the server stops answering', async () => {
      const server = await backend.startPrivate();
      const t = server.target;
      try {
        await t.writeBatch([{ key: Buffer.from('frozen/0'), value: Buffer.from('v') }]);
        server.pause();
        const calls = [(): Promise<unknown> => t.writeBatch([{ key: Buffer.from('frozen/1'), value: Buffer.from('v') }]), () => t.deleteScope(Buffer.from('frozen/'))];
        for (const call of calls) {
          const err = await withinSeconds(30, failureOf(call()));
          expect(err).toBeInstanceOf(KvdrError);
          expect(err.message).not.toContain('\n');
        }
      } finally {
        server.resume();
        await withinSeconds(10, t.close());
        await server.stop();
      }
    }, 120_000);

    it('fails each call in one line naming the endpoint when nothing listens there', async () => {
      const [port] = (await freePorts(1)) as [number];
      const endpoint = `http://127.0.0.1:${port}`;
      const t = backend.unreachable(endpoint);
      try {
        const calls: [string, () => Promise<unknown>][] = [
          ['inspectScope', () => t.inspectScope(Buffer.from('p/'))],
          ['deleteScope', () => t.deleteScope(Buffer.from('p/'))],
          ['writeBatch', () => t.writeBatch([{ key: Buffer.from('p/k'), value: Buffer.from('v') }])],
          ['read', async () => { for await (const r of t.read(Buffer.from('p/'))) void r; }],
        ];
        for (const [call, start] of calls) {
          const err = await withinSeconds(60, failureOf(start()));
          expect(err, call).toBeInstanceOf(KvdrError);
          expect(err.message, call).toContain(`127.0.0.1:${port}`);
          expect(err.message, call).not.toContain('\n');
        }
      } finally {
        await withinSeconds(10, t.close());
      }
    }, 300_000);
  });
}

/**
 * Random bytes for a value near a target's limit, without two byte values. Consul (1.20) splits a raft
 * entry over 512 KiB into chunks, and its log store takes a chunk that begins with byte 41 (its
 * verifier-checkpoint message type) or 41 | 128 for a checkpoint, failing the write with HTTP 500
 * "failed updating verifier state: short buffer" (hashicorp/consul#23926). A chunk boundary falls
 * inside a value this large, so random bytes hit it about once in 128 writes.
 */
function randomNearLimit(size: number): Buffer {
  const value = randomBytes(size);
  for (let i = 0; i < value.length; i++) if (((value[i] as number) & 0x7f) === 41) value[i] = 42;
  return value;
}

/** The largest value refuse() accepts for this key, by binary search (refuse is pure and monotonic in size). */
export function largestAccepted(target: KvTarget, key: Buffer): number {
  let low = -1;
  let high = target.maxValueBytes + 1;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (target.refuse(key, mid) === undefined) low = mid;
    else high = mid - 1;
  }
  return low;
}

export async function failureOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure, the call succeeded');
}

/** The promise's outcome, or a test failure if it takes longer: a call that hangs is the bug. */
export async function withinSeconds<T>(seconds: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${seconds} s`)), seconds * 1000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

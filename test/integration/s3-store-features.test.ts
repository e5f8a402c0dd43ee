import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { Transform } from 'node:stream';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { S3Store } from '../../src/repository/s3-store.js';
import { RepositoryError } from '../../src/util/errors.js';
import { createTestBucket, minioClient, type TestBucket } from '../harness/minio.js';
import { requireEnv } from '../harness/namespace.js';
import { tcpRelay, type Relay } from '../harness/tcp-relay.js';
import { readAll } from '../../src/util/streams.js';

describe('S3 store: encryption, storage class, checksums, object lock and failures (MinIO)', () => {
  const buckets: TestBucket[] = [];
  const stores: S3Store[] = [];
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    for (const bucket of buckets.splice(0)) await bucket.remove();
  });

  async function bucketFor(label: string, options?: { objectLock?: boolean }): Promise<TestBucket> {
    const bucket = await createTestBucket(label, options);
    buckets.push(bucket);
    return bucket;
  }
  function track(store: S3Store): S3Store {
    stores.push(store);
    return store;
  }

  it('applies SSE-S3 and reports it as S3 stored it', async () => {
    const bucket = await bucketFor('sse-s3');
    const store = track(new S3Store(bucket.repository({ sse: { mode: 'AES256' } })));
    const put = await store.put('x', Buffer.from('secret'));
    expect(put.sse).toEqual({ mode: 'AES256' });
    expect((await readAll(await store.get('x'))).toString()).toBe('secret');
  });

  it('applies SSE-KMS with the configured key and records the key id', async () => {
    const bucket = await bucketFor('sse-kms');
    const keyId = requireEnv('KVDR_S3_KMS_KEY_ID');
    const store = track(new S3Store(bucket.repository({ sse: { mode: 'aws:kms', kmsKeyId: keyId } })));
    const put = await store.put('x', Buffer.from('secret'));
    expect(put.sse?.mode).toBe('aws:kms');
    expect(put.sse?.kmsKeyId).toContain(keyId);
  });

  it('writes object-lock retention, streams multipart under it, and reports retain-until and version', async () => {
    const bucket = await bucketFor('lock', { objectLock: true });
    const store = track(new S3Store(bucket.repository({ objectLock: { mode: 'GOVERNANCE', days: 2 } })));
    const before = Date.now();
    const big = Buffer.alloc(11 * 1024 * 1024, 7); // three 5 MiB parts
    const put = await store.put('locked.bin', big);
    expect(put.size).toBe(big.length);
    expect(put.versionId).toBeTruthy();
    expect(put.etag).toMatch(/-3"?$/); // a multipart ETag names its part count
    expect(put.objectLock?.mode).toBe('GOVERNANCE');
    const until = put.objectLock?.retainUntil.getTime() ?? 0;
    expect(until).toBeGreaterThanOrEqual(before + 2 * 86_400_000 - 5_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 2 * 86_400_000 + 5_000);
  });

  it('stores every object, single-part or multipart, in the configured storage class', async () => {
    const bucket = await bucketFor('storage-class');
    const store = track(new S3Store(bucket.repository({ storageClass: 'REDUCED_REDUNDANCY' })));
    await store.put('small', Buffer.from('small'));
    await store.put('big.bin', Buffer.alloc(11 * 1024 * 1024, 3)); // multipart: three 5 MiB parts
    const client = minioClient();
    try {
      for (const key of ['small', 'big.bin']) {
        const head = await client.send(new HeadObjectCommand({ Bucket: bucket.name, Key: key }));
        expect(head.StorageClass, key).toBe('REDUCED_REDUNDANCY');
      }
    } finally {
      client.destroy();
    }
  });

  it('uploads with SDK checksums (CRC32): S3 keeps the one of the bytes sent, whole or per part', async () => {
    const bucket = await bucketFor('checksums');
    const store = track(new S3Store(bucket.repository()));
    const small = Buffer.from('checksummed on the wire');
    await store.put('small', small);
    const big = Buffer.alloc(11 * 1024 * 1024, 5); // three 5 MiB parts
    await store.put('big.bin', big);
    const client = minioClient();
    try {
      const whole = await client.send(new HeadObjectCommand({ Bucket: bucket.name, Key: 'small', ChecksumMode: 'ENABLED' }));
      // The checksum S3 stored was computed by the SDK over the body: it equals the CRC32 of the bytes.
      const expected = Buffer.alloc(4);
      expected.writeUInt32BE(crc32(small));
      expect(whole.ChecksumCRC32).toBe(expected.toString('base64'));

      // Multipart: every part was sent with its CRC32 and the object carries the checksum of those (-<parts>).
      const multipart = await client.send(new HeadObjectCommand({ Bucket: bucket.name, Key: 'big.bin', ChecksumMode: 'ENABLED' }));
      expect(multipart.ChecksumCRC32).toMatch(/^[A-Za-z0-9+/]{6}==-3$/);

      // A read asking for checksum validation checks the stored CRC32 against what arrives.
      const got = await client.send(new GetObjectCommand({ Bucket: bucket.name, Key: 'small', ChecksumMode: 'ENABLED' }));
      expect(got.ChecksumCRC32).toBe(expected.toString('base64'));
      expect(await got.Body?.transformToString()).toBe(small.toString());
    } finally {
      client.destroy();
    }
  });

  type Tap = (chunk: Buffer, offset: number) => Buffer;
  /** A store whose requests pass through a relay that hands each connection's upload bytes to a tap of its own. */
  async function relayed(bucket: TestBucket, newTap: () => Tap, overrides = {}): Promise<S3Store> {
    const relay = await tcpRelay(Number(new URL(requireEnv('KVDR_S3_ENDPOINT')).port), {
      upstream: () => {
        const tap = newTap();
        let offset = 0;
        return new Transform({
          transform(chunk: Buffer, _encoding, done) {
            const out = tap(chunk, offset);
            offset += chunk.length;
            done(null, out);
          },
        });
      },
    });
    relays.push(relay);
    return track(new S3Store({ ...bucket.repository({ endpoint: `http://127.0.0.1:${relay.port}`, ...overrides }), maxAttempts: 1 }));
  }
  const relays: Relay[] = [];
  afterEach(async () => {
    for (const relay of relays.splice(0)) await relay.close();
  });

  /** The payload hash each request of a kind was signed with, read off the wire. */
  function payloadHashes(wire: string, request: RegExp): string[] {
    return wire
      .split('\r\n\r\n')
      .filter((head) => request.test(head))
      .map((head) => /x-amz-content-sha256: (\S+)/i.exec(head)?.[1] ?? 'none');
  }

  it('sends multipart parts unsigned with their CRC32, unless signPartPayloads; single-part objects are signed', async () => {
    const bucket = await bucketFor('unsigned-parts');
    for (const signPartPayloads of [false, true]) {
      const connections: string[] = [];
      const store = await relayed(bucket, () => {
        const at = connections.push('') - 1;
        return (chunk) => {
          connections[at] += chunk.toString('latin1');
          return chunk;
        };
      }, { signPartPayloads, partSizeMiB: 5 });
      await store.put(`big-${signPartPayloads}`, Buffer.alloc(11 * 1024 * 1024, 7));
      await store.put(`small-${signPartPayloads}`, Buffer.from('a manifest'));
      const wire = connections.join('\r\n\r\n');
      const parts = payloadHashes(wire, /^PUT \S+partNumber=/);
      expect(parts).toHaveLength(3);
      for (const hash of parts) expect(hash).toEqual(signPartPayloads ? expect.stringMatching(/^[0-9a-f]{64}$/) : 'UNSIGNED-PAYLOAD');
      expect(wire.match(/^PUT \S+partNumber=[^]*?\r\n\r\n/gm)?.every((head) => /x-amz-checksum-crc32: /i.test(head))).toBe(true);
      const single = payloadHashes(wire, new RegExp(`^PUT /${bucket.name}/small-${signPartPayloads}[ ?]`));
      expect(single).toEqual([expect.stringMatching(/^[0-9a-f]{64}$/)]);
    }
  });

  it('refuses a part damaged on the way (S3 checks its CRC32): the upload fails in one line and nothing is stored', async () => {
    const bucket = await bucketFor('damaged-part');
    // One byte flipped 1 MiB into every connection's upload bytes: inside the body of a 5 MiB part.
    const at = 1024 * 1024;
    const store = await relayed(bucket, () => (chunk, offset) => {
      if (offset > at || offset + chunk.length <= at) return chunk;
      const damaged = Buffer.from(chunk);
      damaged[at - offset] = (damaged[at - offset] as number) ^ 0xff;
      return damaged;
    }, { partSizeMiB: 5 });

    const err = await store.put('damaged', Buffer.alloc(11 * 1024 * 1024, 9)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RepositoryError);
    expect((err as Error).message).toMatch(/cannot upload damaged: XAmzContentChecksumMismatch .*x-amz-checksum/);
    expect((err as Error).message).not.toContain('\n');
    const client = minioClient();
    try {
      expect(await store.head('damaged')).toBeUndefined();
      expect((await client.send(new ListMultipartUploadsCommand({ Bucket: bucket.name }))).Uploads ?? []).toEqual([]);
    } finally {
      client.destroy();
    }
  });

  it('keeps the repository prefix out of the keys it returns', async () => {
    const bucket = await bucketFor('prefix');
    const store = track(new S3Store(bucket.repository({ prefix: 'prod/eu' })));
    await store.put('manifests/j/1.json', Buffer.from('{}'));
    const keys: string[] = [];
    for await (const info of store.list('manifests/')) keys.push(info.key);
    expect(keys).toEqual(['manifests/j/1.json']);
    expect(store.location).toContain('/prod/eu/');
  });

  it('leaves the repository config it was given untouched', async () => {
    const bucket = await bucketFor('no-mutation');
    const config = bucket.repository();
    const before = JSON.stringify(config);
    await track(new S3Store(config)).put('x', Buffer.from('x'));
    expect(JSON.stringify(config)).toBe(before);
  });

  it('names an unreachable endpoint in one line', async () => {
    const bucket = await bucketFor('unreachable');
    const store = track(new S3Store({ ...bucket.repository({ endpoint: 'http://127.0.0.1:9' }), maxAttempts: 1 }));
    const err = await store.put('x', Buffer.from('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RepositoryError);
    expect((err as Error).message).toMatch(/cannot reach the S3 endpoint \(ECONNREFUSED\)/);
    expect((err as Error).message).not.toContain('\n');
  });

  it('says the credentials were rejected', async () => {
    const bucket = await bucketFor('badcreds');
    const store = track(
      new S3Store(bucket.repository({ credentials: { accessKeyId: 'nobody', secretAccessKey: 'wrong-secret-key' } })),
    );
    await expect(store.head('x')).rejects.toThrow(/credentials were rejected|access denied/);
  });
});

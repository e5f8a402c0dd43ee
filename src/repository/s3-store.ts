import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type PutObjectCommandInput,
  type UploadPartCommandInput,
} from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import type { S3RepositoryConfig } from '../config/schema.js';
import { ObjectExistsError, ObjectNotFoundError } from '../util/errors.js';
import { assertValidKey, type ObjectInfo, type ObjectStore, type PutOptions, type PutResult, type StoreProtection } from './object-store.js';
import { describeS3Error, isNotFound, isPreconditionFailed } from './s3-errors.js';

const MiB = 1024 * 1024;

/** S3's limits for one multipart upload. */
const MAX_PARTS = 10_000;
const MAX_PART_BYTES = 5 * 1024 * MiB;
/** Parts of a stream of unknown size double in size every this many parts, so 10,000 parts are never the limit. */
const PARTS_PER_SIZE_STEP = 1_000;

export type S3StoreOptions = Omit<S3RepositoryConfig, 'type' | 'name' | 'forcePathStyle' | 'prefix' | 'partSizeMiB' | 'queueSize' | 'signPartPayloads'> & {
  /** @defaultValue false (virtual-hosted style); MinIO and most S3-compatible stores want true */
  forcePathStyle?: boolean;
  /** Key prefix inside the bucket; ends with `/` or is empty. @defaultValue '' */
  prefix?: string;
  /**
   * Size of a multipart part. Parts are reused buffers: an upload holds partSizeMiB × (queueSize + 1).
   * Larger when the size is known and would need more than 10,000 parts; for a stream of unknown size
   * the part size doubles every 1,000 parts.
   * @defaultValue 8
   */
  partSizeMiB?: number;
  /** Parts in flight at once; reading the body pauses while they are. @defaultValue 2 */
  queueSize?: number;
  /** @defaultValue 3 */
  maxAttempts?: number;
  /**
   * Sign every multipart part's bytes into its SigV4 signature. Off, parts are sent as UNSIGNED-PAYLOAD
   * with their CRC32 checksum, which S3 verifies before it keeps the part: what the SDK itself does for
   * every streamed body. That saves a SHA-256 pass over the artifact here and another in the store.
   * Single-part objects (manifests, small artifacts) are always signed, and a manifest records its
   * artifact's SHA-256, which every restore and verify run checks.
   * @defaultValue false
   */
  signPartPayloads?: boolean;
};

/**
 * Repository in an S3 bucket. Uploads stream as multipart uploads whose parts are read into a fixed set
 * of reused buffers (memory is partSize × (queueSize + 1), whatever the artifact size); `If-None-Match: *`
 * makes every write write-once; SSE, storage class and object-lock retention are applied to every object
 * when configured.
 */
export class S3Store implements ObjectStore {
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private closed = false;

  constructor(private readonly options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = normalizePrefix(options.prefix ?? '');
    this.location = `s3://${options.bucket}/${this.prefix} (${options.region})`;
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      // A copy: the SDK annotates the credentials object it is given, which would alter the caller's config.
      ...(options.credentials ? { credentials: { ...options.credentials } } : {}),
      maxAttempts: options.maxAttempts ?? 3,
      // Checksums on every request the service supports (CRC32 per part), so corruption in transit fails the write.
      requestChecksumCalculation: 'WHEN_SUPPORTED',
      responseChecksumValidation: 'WHEN_SUPPORTED',
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 120_000 },
    });
  }

  async put(key: string, body: Readable | Buffer, options: PutOptions = {}): Promise<PutResult> {
    const fullKey = this.fullKey(key);
    // Fail before streaming anything when the key is taken; If-None-Match below closes the race.
    if (await this.head(key)) throw new ObjectExistsError(key);
    const params: PutObjectCommandInput = {
      Bucket: this.bucket,
      Key: fullKey,
      IfNoneMatch: '*',
      ContentType: options.contentType ?? 'application/octet-stream',
      ...(options.metadata ? { Metadata: options.metadata } : {}),
      ...(this.options.storageClass ? { StorageClass: this.options.storageClass as PutObjectCommandInput['StorageClass'] } : {}),
      ...this.encryptionParams(),
      ...this.lockParams(),
    };
    const size = Buffer.isBuffer(body) ? body.length : options.contentLength;
    try {
      await this.upload(params, body, firstPartSize((this.options.partSizeMiB ?? 8) * MiB, size));
    } catch (err) {
      if (isPreconditionFailed(err)) throw new ObjectExistsError(key);
      throw describeS3Error(err, this.location, `upload ${key}`);
    }
    return this.describeWritten(key);
  }

  async get(key: string): Promise<Readable> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
      if (!(out.Body instanceof Readable)) throw new Error('GetObject returned no readable body');
      return out.Body;
    } catch (err) {
      if (isNotFound(err)) throw new ObjectNotFoundError(key);
      throw describeS3Error(err, this.location, `download ${key}`);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    return (await this.headFull(key)) ?? undefined;
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    const pages = paginateListObjectsV2(
      { client: this.client, pageSize: 1000 },
      { Bucket: this.bucket, Prefix: this.prefix + prefix },
    );
    try {
      for await (const page of pages) {
        for (const object of page.Contents ?? []) {
          if (object.Key === undefined) continue;
          yield {
            key: object.Key.slice(this.prefix.length),
            size: object.Size ?? 0,
            lastModified: object.LastModified ?? new Date(0),
            ...(object.ETag ? { etag: object.ETag } : {}),
          };
        }
      }
    } catch (err) {
      throw describeS3Error(err, this.location, `list ${prefix || '/'}`);
    }
  }

  async protection(): Promise<StoreProtection> {
    try {
      const versioning = await this.client.send(new GetBucketVersioningCommand({ Bucket: this.bucket }));
      const lock = await this.client
        .send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket }))
        .catch((err: unknown) => {
          // A bucket created without object lock answers with this error rather than an empty configuration.
          if ((err as { name?: string }).name === 'ObjectLockConfigurationNotFoundError') return undefined;
          throw err;
        });
      const config = lock?.ObjectLockConfiguration;
      const retention = config?.Rule?.DefaultRetention;
      return {
        versioning: versioning.Status ?? 'Off',
        objectLock: {
          enabled: config?.ObjectLockEnabled === 'Enabled',
          ...(retention?.Mode ? { mode: retention.Mode } : {}),
          ...(retention?.Days !== undefined ? { days: retention.Days } : {}),
          ...(retention?.Years !== undefined ? { years: retention.Years } : {}),
        },
      };
    } catch (err) {
      throw describeS3Error(err, this.location, 'read the bucket versioning and object lock configuration');
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
    } catch (err) {
      if (!isNotFound(err)) throw describeS3Error(err, this.location, `delete ${key}`);
    }
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.client.destroy();
    }
    return Promise.resolve();
  }

  /**
   * One PutObject when the body fits in one part; otherwise a multipart upload with up to `queueSize`
   * parts in flight. Reading stops while the queue is full, so a slow store slows the source (no part is
   * buffered beyond the queue), and the part buffers are reused rather than allocated per part. Any
   * failure (the body's or S3's) aborts the multipart upload, so nothing is left under the key.
   */
  private async upload(params: PutObjectCommandInput, body: Readable | Buffer, partSize: number): Promise<void> {
    const queueSize = this.options.queueSize ?? 2;
    const parts = Buffer.isBuffer(body) ? bufferParts(body, partSize) : streamParts(body, partSize, new PartBuffers());
    let uploadId: string | undefined;
    const done: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: { err: unknown } | undefined;
    try {
      for await (const part of parts) {
        if (part.number === 1 && part.last) {
          await this.client.send(new PutObjectCommand({ ...params, Body: part.data, ContentLength: part.data.length }));
          return;
        }
        uploadId ??= (await this.client.send(new CreateMultipartUploadCommand({ ...params, ChecksumAlgorithm: 'CRC32' }))).UploadId;
        const sent = this.client
          .send(this.uploadPart({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId, PartNumber: part.number, Body: part.data, ContentLength: part.data.length, ChecksumAlgorithm: 'CRC32' }))
          .then(
            (out) => {
              if (!out.ETag) throw new Error(`part ${part.number} has no ETag in the UploadPart response`);
              done.push({ PartNumber: part.number, ETag: out.ETag, ...(out.ChecksumCRC32 ? { ChecksumCRC32: out.ChecksumCRC32 } : {}) });
            },
          )
          .catch((err: unknown) => {
            failure ??= { err };
          })
          .finally(() => {
            part.release();
            inFlight.delete(sent);
          });
        inFlight.add(sent);
        while (inFlight.size >= queueSize && !failure) await Promise.race(inFlight);
        if (failure) break;
      }
      await Promise.all(inFlight);
      if (failure) throw failure.err;
      if (uploadId === undefined) throw new Error('the body yielded no part');
      done.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId, IfNoneMatch: '*', MultipartUpload: { Parts: done } }),
      );
    } catch (err) {
      await Promise.allSettled(inFlight);
      if (uploadId !== undefined) {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId })).catch(() => undefined);
      }
      throw err;
    }
  }

  /**
   * An UploadPart, unsigned unless `signPartPayloads`: the SigV4 signer takes a payload hash already in
   * the headers as it is, and still signs the CRC32 header the SDK adds (the tests read both off the wire).
   */
  private uploadPart(input: UploadPartCommandInput): UploadPartCommand {
    const command = new UploadPartCommand(input);
    if (!this.options.signPartPayloads) {
      command.middlewareStack.add(
        (next) => (args) => {
          const request = args.request as { headers?: Record<string, string> };
          if (request.headers) request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
          return next(args);
        },
        { step: 'build', name: 'kvdrUnsignedPartPayload' },
      );
    }
    return command;
  }

  /** Reads back what S3 stored, so the manifest records S3's own answer rather than what was asked. */
  private async describeWritten(key: string): Promise<PutResult> {
    const head = await this.headFull(key);
    if (!head) throw describeS3Error(new Error('object missing right after upload'), this.location, `verify ${key}`);
    return head;
  }

  private async headFull(key: string): Promise<PutResult | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
      return {
        key,
        size: out.ContentLength ?? 0,
        lastModified: out.LastModified ?? new Date(0),
        ...(out.ETag ? { etag: out.ETag } : {}),
        ...(out.VersionId ? { versionId: out.VersionId } : {}),
        ...(out.ServerSideEncryption
          ? { sse: { mode: out.ServerSideEncryption, ...(out.SSEKMSKeyId ? { kmsKeyId: out.SSEKMSKeyId } : {}) } }
          : {}),
        ...(out.ObjectLockMode && out.ObjectLockRetainUntilDate
          ? { objectLock: { mode: out.ObjectLockMode, retainUntil: out.ObjectLockRetainUntilDate } }
          : {}),
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw describeS3Error(err, this.location, `inspect ${key}`);
    }
  }

  private encryptionParams(): Partial<PutObjectCommandInput> {
    const sse = this.options.sse;
    if (!sse) return {};
    return { ServerSideEncryption: sse.mode, ...(sse.kmsKeyId ? { SSEKMSKeyId: sse.kmsKeyId } : {}) };
  }

  private lockParams(): Partial<PutObjectCommandInput> {
    const lock = this.options.objectLock;
    if (!lock) return {};
    return { ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: new Date(Date.now() + lock.days * 86_400_000) };
  }

  private fullKey(key: string): string {
    assertValidKey(key);
    return this.prefix + key;
  }
}

function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+/, '');
  return trimmed === '' || trimmed.endsWith('/') ? trimmed : `${trimmed}/`;
}

interface Part {
  number: number;
  data: Buffer;
  last: boolean;
  /** Called once S3 has the part (or gave up on it): its buffer may be filled again. */
  release: () => void;
}

/**
 * The first part's size: the configured one, or larger when the size is known and would need more than
 * S3's 10,000 parts.
 */
function firstPartSize(partSize: number, size: number | undefined): number {
  if (size === undefined) return partSize;
  return Math.min(MAX_PART_BYTES, Math.max(partSize, Math.ceil(size / MAX_PARTS)));
}

/** Part n's size when the size is not known: doubles every 1,000 parts (5 MiB parts reach 5 TiB). */
function partSizeOf(first: number, number: number): number {
  return Math.min(MAX_PART_BYTES, first * 2 ** Math.floor((number - 1) / PARTS_PER_SIZE_STEP));
}

/** A Buffer cut into parts: views, no copies. */
function* bufferParts(body: Buffer, partSize: number): Generator<Part> {
  const parts = Math.max(1, Math.ceil(body.length / partSize));
  for (let i = 0; i < parts; i++) {
    yield { number: i + 1, data: body.subarray(i * partSize, (i + 1) * partSize), last: i === parts - 1, release: () => undefined };
  }
}

/** Part buffers kept for reuse: the upload allocates at most queueSize + 1 of them, once. */
class PartBuffers {
  private readonly free: Buffer[] = [];

  take(size: number): Buffer {
    const buffer = this.free.pop();
    return buffer && buffer.length >= size ? buffer : Buffer.allocUnsafeSlow(size);
  }

  give(buffer: Buffer): void {
    this.free.push(buffer);
  }
}

/**
 * A stream cut into parts, each copied into a reused buffer. A full part is only handed out once the
 * next byte arrives (or the stream ends), so a body of exactly one part is one PutObject, and the last
 * part is never empty. The stream is only read while the caller asks for the next part.
 */
async function* streamParts(body: Readable, firstSize: number, buffers: PartBuffers): AsyncGenerator<Part> {
  let number = 1;
  let size = partSizeOf(firstSize, number);
  let buffer = buffers.take(size);
  let filled = 0;
  const part = (last: boolean): Part => {
    const owned = buffer;
    return { number, data: owned.subarray(0, filled), last, release: () => buffers.give(owned) };
  };
  for await (const chunk of body as AsyncIterable<Buffer | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let offset = 0;
    while (offset < bytes.length) {
      if (filled === size) {
        yield part(false);
        number += 1;
        size = partSizeOf(firstSize, number);
        buffer = buffers.take(size);
        filled = 0;
      }
      const n = Math.min(size - filled, bytes.length - offset);
      bytes.copy(buffer, filled, offset, offset + n);
      filled += n;
      offset += n;
    }
  }
  yield part(true);
}

import {
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  S3Client,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import type { S3RepositoryConfig } from '../config/schema.js';
import { ObjectExistsError, ObjectNotFoundError } from '../util/errors.js';
import { assertValidKey, type ObjectInfo, type ObjectStore, type PutOptions, type PutResult, type StoreProtection } from './object-store.js';
import { describeS3Error, isNotFound, isPreconditionFailed } from './s3-errors.js';

const MiB = 1024 * 1024;

export type S3StoreOptions = Omit<S3RepositoryConfig, 'type' | 'name' | 'forcePathStyle' | 'prefix' | 'partSizeMiB' | 'queueSize'> & {
  /** @defaultValue false (virtual-hosted style); MinIO and most S3-compatible stores want true */
  forcePathStyle?: boolean;
  /** Key prefix inside the bucket; ends with `/` or is empty. @defaultValue '' */
  prefix?: string;
  /** @defaultValue 16 */
  partSizeMiB?: number;
  /** @defaultValue 4 */
  queueSize?: number;
  /** @defaultValue 3 */
  maxAttempts?: number;
};

/**
 * Repository in an S3 bucket. Uploads stream through lib-storage multipart (memory is
 * partSize × queueSize, whatever the artifact size); `If-None-Match: *` makes every write write-once;
 * SSE, storage class and object-lock retention are applied to every object when configured.
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
      Body: body,
      IfNoneMatch: '*',
      ContentType: options.contentType ?? 'application/octet-stream',
      ...(options.contentLength !== undefined ? { ContentLength: options.contentLength } : {}),
      ...(options.metadata ? { Metadata: options.metadata } : {}),
      ...(this.options.storageClass ? { StorageClass: this.options.storageClass as PutObjectCommandInput['StorageClass'] } : {}),
      ...this.encryptionParams(),
      ...this.lockParams(),
    };
    const upload = new Upload({
      client: this.client,
      params,
      partSize: (this.options.partSizeMiB ?? 16) * MiB,
      queueSize: this.options.queueSize ?? 4,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
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

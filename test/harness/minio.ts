import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectVersionsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import type { S3RepositoryConfig } from '../../src/config/schema.js';
import { requireEnv, uniqueName } from './namespace.js';

export function minioClient(): S3Client {
  return new S3Client({
    region: requireEnv('KVDR_S3_REGION'),
    endpoint: requireEnv('KVDR_S3_ENDPOINT'),
    forcePathStyle: true,
    credentials: { accessKeyId: requireEnv('KVDR_S3_ACCESS_KEY'), secretAccessKey: requireEnv('KVDR_S3_SECRET_KEY') },
  });
}

export interface TestBucket {
  name: string;
  /** A repository config pointing at this bucket, ready to hand to openStore. */
  repository(overrides?: Partial<S3RepositoryConfig>): S3RepositoryConfig;
  /** Deletes every version of every object (bypassing governance locks) and the bucket. */
  remove(): Promise<void>;
}

/** A fresh bucket in the test MinIO; object lock (and so versioning) when asked. */
export async function createTestBucket(label: string, options: { objectLock?: boolean } = {}): Promise<TestBucket> {
  const name = uniqueName(label).slice(0, 63);
  const client = minioClient();
  await client.send(new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: options.objectLock ?? false }));
  return {
    name,
    repository: (overrides = {}) => ({
      name: 'test',
      type: 's3',
      bucket: name,
      region: requireEnv('KVDR_S3_REGION'),
      endpoint: requireEnv('KVDR_S3_ENDPOINT'),
      forcePathStyle: true,
      prefix: '',
      partSizeMiB: 5,
      queueSize: 2,
      credentials: { accessKeyId: requireEnv('KVDR_S3_ACCESS_KEY'), secretAccessKey: requireEnv('KVDR_S3_SECRET_KEY') },
      ...overrides,
    }),
    remove: async () => {
      try {
        let keyMarker: string | undefined;
        let versionMarker: string | undefined;
        for (;;) {
          const page = await client.send(
            new ListObjectVersionsCommand({ Bucket: name, KeyMarker: keyMarker, VersionIdMarker: versionMarker }),
          );
          const all = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])];
          await Promise.all(
            all.map((v) =>
              client.send(
                new DeleteObjectCommand({ Bucket: name, Key: v.Key, VersionId: v.VersionId, BypassGovernanceRetention: true }),
              ),
            ),
          );
          if (!page.IsTruncated) break;
          keyMarker = page.NextKeyMarker;
          versionMarker = page.NextVersionIdMarker;
        }
        await client.send(new DeleteBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
    },
  };
}

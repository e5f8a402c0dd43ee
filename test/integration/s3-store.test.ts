import { createTestBucket } from '../harness/minio.js';
import { S3Store } from '../../src/repository/s3-store.js';
import { objectStoreConformance } from './object-store-conformance.js';

objectStoreConformance('s3 (MinIO)', async () => {
  const bucket = await createTestBucket('conformance');
  return { store: new S3Store(bucket.repository({ prefix: 'repo/' })), cleanup: () => bucket.remove() };
});

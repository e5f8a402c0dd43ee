import type { RepositoryConfig } from '../config/schema.js';
import { FsStore } from './fs-store.js';
import type { ObjectStore } from './object-store.js';
import { S3Store } from './s3-store.js';

/** The one place that turns a repository's configuration into its backend. */
export function openStore(config: RepositoryConfig): ObjectStore {
  switch (config.type) {
    case 's3':
      return new S3Store(config);
    case 'fs':
      return new FsStore({ path: config.path });
  }
}

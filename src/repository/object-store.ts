import type { Readable } from 'node:stream';

/** What a listing or head tells about one stored object. Keys are relative to the repository root. */
export interface ObjectInfo {
  key: string;
  size: number;
  lastModified: Date;
  etag?: string;
  versionId?: string;
}

export interface PutOptions {
  /** @defaultValue `application/octet-stream` */
  contentType?: string;
  /** Size in bytes when known in advance; lets S3 skip multipart for small objects. */
  contentLength?: number;
  /** Small string metadata stored beside the object where the backend supports it. */
  metadata?: Record<string, string>;
}

/** What the backend reported after a successful write: the facts a manifest records. */
export interface PutResult extends ObjectInfo {
  sse?: { mode: string; kmsKeyId?: string };
  objectLock?: { mode: string; retainUntil: Date };
}

/** What the backend itself enforces against deletion and overwrite, as it reports it. */
export interface StoreProtection {
  /** e.g. `Enabled`, `Suspended`, `Off` (never enabled), `unsupported` (filesystem). */
  versioning: string;
  objectLock: { enabled: boolean; mode?: string; days?: number; years?: number };
}

/**
 * One storage interface for every repository backend (S3, filesystem).
 *
 * Invariants every backend keeps, checked by the conformance suite:
 * - `put` is write-once: an existing key is never replaced (ObjectExistsError), and a failed or
 *   aborted put leaves no object behind under that key.
 * - `get` and `put` stream: no backend holds a whole object in memory.
 * - `list` yields every object under a prefix in ascending key order, across any number of pages.
 * - `delete` is idempotent; only retention (prune) calls it.
 */
export interface ObjectStore {
  /** Human-readable location for messages, e.g. `s3://bucket/prefix (us-west-2)`. */
  readonly location: string;
  put(key: string, body: Readable | Buffer, options?: PutOptions): Promise<PutResult>;
  /** @throws ObjectNotFoundError when there is no such key. */
  get(key: string): Promise<Readable>;
  /** `undefined` when there is no such key. */
  head(key: string): Promise<ObjectInfo | undefined>;
  list(prefix?: string): AsyncIterable<ObjectInfo>;
  delete(key: string): Promise<void>;
  /** Versioning and object lock of the bucket (or their absence), for the IMMUTABILITY control. */
  protection(): Promise<StoreProtection>;
  /** Releases connections; safe to call more than once. */
  close(): Promise<void>;
}

/** Keys are `/`-separated relative paths without `.`/`..` segments, the same on every backend. */
export function assertValidKey(key: string): void {
  const bad =
    key === '' ||
    key.startsWith('/') ||
    key.endsWith('/') ||
    key.includes('\\') ||
    key.includes('\0') ||
    key.split('/').some((part) => part === '' || part === '.' || part === '..');
  if (bad) throw new TypeError(`invalid object key ${JSON.stringify(key)}`);
}

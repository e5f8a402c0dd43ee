/**
 * One key/value pair as every format reader yields it and every replay consumes it. Keys and values
 * are raw bytes; the optional fields are carried where the source format has them.
 */
export interface KvRecord {
  key: Buffer;
  value: Buffer;
  /** etcd lease id as a decimal string ("0" or absent = none); int64 does not fit a JS number. */
  lease?: string;
  createRevision?: number;
  modRevision?: number;
  version?: number;
  /** Consul flags. */
  flags?: number;
}

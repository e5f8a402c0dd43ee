import type { Compression } from '../formats/inflate.js';

export type ArtifactFormat = 'px-dump' | 'etcd-export' | 'consul-export' | 'etcd-snapshot' | 'consul-snapshot';

/** A restorable artifact on local disk: a user's file, or a backup spooled from the repository. */
export interface LocalArtifact {
  path: string;
  format: ArtifactFormat;
  /** kvdr's compression over the artifact (never a Consul snapshot's own tar.gz, which its reader opens). */
  compression: Compression;
  /** For messages: the file name or backup id. */
  label: string;
  /**
   * The most bytes decompression may produce before the artifact is refused as damaged or a bomb: a
   * stored backup's manifest says how large it is; a local file gets the configured cap.
   * @defaultValue DEFAULT_MAX_INFLATED_BYTES (16 GiB)
   */
  maxInflatedBytes?: number;
}

import type { Readable } from 'node:stream';

/** Facts about an artifact that are known only once its bytes have all been read. */
export interface ArtifactFacts {
  revision?: number;
  raftIndex?: number;
  records?: number;
  details: Record<string, unknown>;
}

/** A backup kind's producer: the bytes to store and what they turned out to contain. */
export interface ArtifactSource {
  /** The endpoints actually used (after environment defaults), for the manifest. */
  endpoints: string[];
  /** Extension of the uncompressed artifact: `.db`, `.ndjson`, `.snap`, `.json`. */
  extension: string;
  bytes: Readable;
  /** Maps a failure of this source (connection, auth, stream) to a one-line user-facing error. */
  describeError: (err: unknown) => Error;
  /** Things the source could not learn or vouch for (e.g. a version the token may not read); logged once per run. */
  warnings?: readonly string[];
  facts: () => ArtifactFacts;
  close: () => Promise<void>;
}

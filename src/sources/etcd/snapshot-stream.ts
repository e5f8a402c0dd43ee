import type { ClientReadableStream, Metadata, Client } from '@grpc/grpc-js';
import { Transform, type Readable } from 'node:stream';
import type { Etcd3 } from 'etcd3';

interface SnapshotMessage {
  header?: { revision?: string };
  remaining_bytes?: string;
  blob: Buffer;
}

interface Pool {
  withConnection<T>(service: 'Maintenance', fn: (args: { resource: unknown; client: Client; metadata: Metadata }) => T): Promise<T>;
  markFailed(resource: unknown, error: Error): void;
}

export interface SnapshotStream {
  /** The bytes exactly as `etcdctl snapshot save` writes them: the bbolt db, then its 32-byte sha256. */
  bytes: Readable;
  /** The revision etcd reported with the first message (known once bytes start flowing). */
  revision(): number | undefined;
}

/**
 * Opens Maintenance.Snapshot. etcd3 1.1.2's `maintenance.snapshot()` passes (metadata, options, {})
 * where grpc-js expects (request, metadata, options), so the auth token never reaches etcd and a
 * cluster with auth enabled answers "user name is empty". This calls the same gRPC method through
 * etcd3's own connection pool with the arguments in the right order, keeping its auth and TLS.
 */
export async function openSnapshotStream(etcd: Etcd3): Promise<SnapshotStream> {
  const pool = (etcd as unknown as { pool: Pool }).pool;
  const call = await pool.withConnection('Maintenance', ({ resource, client, metadata }) => {
    const rpc = (client as unknown as { snapshot: (req: object, md: Metadata) => ClientReadableStream<SnapshotMessage> })
      .snapshot;
    const stream = rpc.call(client, {}, metadata);
    stream.on('error', (err: Error) => pool.markFailed(resource, err));
    return stream;
  });
  let revision: number | undefined;
  const toBytes = new Transform({
    readableObjectMode: false,
    writableObjectMode: true,
    transform(message: SnapshotMessage, _encoding, done) {
      if (revision === undefined && message.header?.revision !== undefined) revision = Number(message.header.revision);
      done(null, message.blob);
    },
  });
  call.on('error', (err) => toBytes.destroy(err));
  toBytes.on('close', () => call.cancel());
  call.pipe(toBytes);
  return { bytes: toBytes, revision: () => revision };
}

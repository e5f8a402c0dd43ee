import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { finished, type Readable } from 'node:stream';
import type { Etcd3 } from 'etcd3';
import { readPem } from '../../util/read-pem.js';
import { etcdTls, type EtcdConnection } from './connect.js';
import { SnapshotFrames } from './snapshot-frames.js';

interface Pool {
  withConnection<T>(service: 'Maintenance', fn: (args: { resource: { host: string }; metadata: { get(key: string): unknown[] } }) => T): Promise<T>;
}

export interface SnapshotStream {
  /** The bytes exactly as `etcdctl snapshot save` writes them: the bbolt db, then its 32-byte sha256. */
  bytes: Readable;
  /** The revision in the first message's header, if etcd sent one (3.4 and 3.5 do not). */
  revision(): number | undefined;
}

/**
 * HTTP/2 flow-control window for the snapshot stream, per stream and per connection. Node's default
 * (64 KiB) makes etcd stall for window updates. Larger is not better: what etcd sends while the upload
 * holds the pipeline back waits in the window as frames, long enough for V8 to promote them, and they
 * stay as garbage until a full collection (1.3 GB snapshot, 8 MiB x 2 parts: peak RSS 133-139 MB over
 * seven runs at 2 MiB, 135-161 MB at 4 MiB, the same time). Backpressure holds: an unread stream sends
 * no window updates.
 */
const WINDOW = 2 * 1024 * 1024;

/**
 * Opens Maintenance.Snapshot as a plain gRPC call over its own HTTP/2 connection, to the host and with
 * the auth token etcd3's pool would use. Two reasons not to go through etcd3 and grpc-js:
 * - etcd3 1.1.2's `maintenance.snapshot()` passes (metadata, options, {}) where grpc-js expects
 *   (request, metadata, options), so the token never reaches etcd ("user name is empty");
 * - grpc-js joins every 32 KiB message into a new buffer and decodes it into an object. For a
 *   snapshot that is all copying: here the blob bytes leave as views of the frames that brought them
 *   (a 1.3 GB snapshot to S3 with zstd: kvdr's CPU went from 6.5-7.1 s to 5.8-6.3 s).
 */
export async function openSnapshotStream(etcd: Etcd3, connection: EtcdConnection): Promise<SnapshotStream> {
  const pool = (etcd as unknown as { pool: Pool }).pool;
  const { host, token } = await pool.withConnection('Maintenance', ({ resource, metadata }) => ({
    host: resource.host,
    token: metadata.get('token')[0] as string | undefined,
  }));
  const session = connectTo(host, connection);
  let status: { code: number; message: string } | undefined;
  const frames = new SnapshotFrames(() => {
    if (status === undefined) return new Error('Connection dropped: the snapshot stream ended without a gRPC status');
    if (status.code !== 0) return grpcError(status);
    if (!frames.atMessageBoundary()) return new Error('Connection dropped: the snapshot stream ended inside a message');
    return undefined;
  });
  session.on('error', (err: Error) => frames.destroy(dropped(err)));
  const call = session.request({
    ':method': 'POST',
    ':path': '/etcdserverpb.Maintenance/Snapshot',
    'content-type': 'application/grpc',
    te: 'trailers',
    ...(token === undefined ? {} : { token }),
  });
  const onStatus = (headers: IncomingHttpHeaders): void => {
    const code = headers['grpc-status'];
    if (typeof code === 'string') status = { code: Number(code), message: decodeMessage(headers['grpc-message']) };
  };
  call.on('response', onStatus); // a trailers-only answer (an error before any data) carries the status here
  call.on('trailers', onStatus);
  // A connection that drops mid-stream closes the call without an end: that fails the snapshot too.
  finished(call, { writable: false }, (err) => {
    if (err) frames.destroy(dropped(err));
  });
  frames.on('close', () => {
    if (!call.closed) call.close(constants.NGHTTP2_CANCEL);
    session.close();
  });
  call.end(EMPTY_REQUEST);
  call.pipe(frames);
  return { bytes: frames, revision: () => frames.revision() };
}

/** SnapshotRequest{} as a gRPC message: not compressed, length 0. */
const EMPTY_REQUEST = Buffer.alloc(5);

function connectTo(host: string, connection: EtcdConnection): ClientHttp2Session {
  const tls = etcdTls(connection);
  const secure = Boolean(tls?.ca || tls?.cert || tls?.key) || connection.endpoints.some((e) => e.startsWith('https:'));
  const session = connect(`${secure ? 'https' : 'http'}://${host}`, {
    settings: { initialWindowSize: WINDOW },
    ...(secure
      ? { ca: readPem(tls?.ca, 'tls.ca'), cert: readPem(tls?.cert, 'tls.cert'), key: readPem(tls?.key, 'tls.key'), ALPNProtocols: ['h2'] }
      : {}),
  });
  session.on('connect', () => session.setLocalWindowSize(WINDOW));
  return session;
}

/** Names the cause in the words describeEtcdError reads as "cannot reach etcd": a socket errno, else a drop. */
function dropped(err: Error): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const cause = code !== undefined && /^E[A-Z]+$/.test(code) ? code : 'Connection dropped';
  return new Error(`${cause}: ${err.message}`, { cause: err });
}

/** etcd's gRPC errors carry its own text ("etcdserver: user name is empty"), which describeEtcdError reads. */
function grpcError(status: { code: number; message: string }): Error {
  return Object.assign(new Error(`${status.message} (gRPC status ${status.code})`), { code: status.code });
}

function decodeMessage(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value.join(', ') : (value ?? '');
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

import { Etcd3, type IOptions } from 'etcd3';
import type { SourceConfig } from '../../config/schema.js';
import { readPem } from '../../util/read-pem.js';

export type EtcdConnection = Pick<SourceConfig, 'endpoints' | 'auth' | 'tls'>;

/**
 * An etcd3 client for a source or restore target: several endpoints, TLS with client certificates,
 * username/password. Credentials default to the etcdctl environment (ETCDCTL_USER, ETCDCTL_CACERT, ...)
 * so an operator's existing shell setup works unchanged.
 */
export function connectEtcd(
  connection: EtcdConnection,
  env: NodeJS.ProcessEnv = process.env,
  /**
   * The largest gRPC message accepted; -1 for none. A watch catching up sends up to 1,000 revisions in
   * one response, which no fixed limit bounds (a limit it exceeds would make it fail and retry forever).
   * @defaultValue 64 MiB
   */
  maxReceiveBytes = 64 * 1024 * 1024,
): Etcd3 {
  const options: IOptions = {
    hosts: connection.endpoints,
    dialTimeout: 5_000,
    // Range pages and snapshot chunks can exceed gRPC's 4 MiB default; 64 MiB bounds one page in memory
    // (readRange halves its page size when a page would be larger).
    // A 4 MiB HTTP/2 flow-control window (Node's default is 64 KiB): with the default, etcd stalls waiting
    // for window updates on every large response (when snapshots still came through here, a 348 MB one
    // cost etcd 2.1 s of CPU instead of 1.35 s). Snapshots now have their own connection and window
    // (snapshot-stream.ts). Backpressure still holds: grpc-js pauses a slow stream.
    grpcOptions: { 'grpc.max_receive_message_length': maxReceiveBytes, 'grpc-node.flow_control_window': 4 * 1024 * 1024 },
  };
  const auth = etcdAuth(connection, env);
  if (auth) options.auth = { username: auth.username, password: auth.password };
  const tls = etcdTls(connection, env);
  if (tls && (tls.ca || tls.cert || tls.key)) {
    options.credentials = {
      rootCertificate: readPem(tls.ca, 'tls.ca') ?? Buffer.alloc(0),
      ...(tls.cert ? { certChain: readPem(tls.cert, 'tls.cert') as Buffer } : {}),
      ...(tls.key ? { privateKey: readPem(tls.key, 'tls.key') as Buffer } : {}),
    };
  }
  return new Etcd3(options);
}

/** The user the client authenticates as: configured, else ETCDCTL_USER. */
export function etcdAuth(connection: EtcdConnection, env: NodeJS.ProcessEnv = process.env): { username: string; password: string } | undefined {
  return connection.auth ?? authFromEnv(env);
}

/** The TLS files the client uses: configured, else ETCDCTL_CACERT / ETCDCTL_CERT / ETCDCTL_KEY. */
export function etcdTls(connection: EtcdConnection, env: NodeJS.ProcessEnv = process.env): EtcdConnection['tls'] {
  return connection.tls ?? tlsFromEnv(env);
}

function authFromEnv(env: NodeJS.ProcessEnv): { username: string; password: string } | undefined {
  const user = env['ETCDCTL_USER'];
  if (!user) return undefined;
  // etcdctl accepts "user:password" in ETCDCTL_USER, or ETCDCTL_PASSWORD beside it.
  const colon = user.indexOf(':');
  if (colon >= 0) return { username: user.slice(0, colon), password: user.slice(colon + 1) };
  return { username: user, password: env['ETCDCTL_PASSWORD'] ?? '' };
}

function tlsFromEnv(env: NodeJS.ProcessEnv): EtcdConnection['tls'] {
  const ca = env['ETCDCTL_CACERT'];
  const cert = env['ETCDCTL_CERT'];
  const key = env['ETCDCTL_KEY'];
  if (!ca && !cert && !key) return undefined;
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

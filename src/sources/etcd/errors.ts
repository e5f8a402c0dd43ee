import {
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCResourceExhastedError,
  GRPCUnauthenticatedError,
  GRPCUnavailableError,
} from 'etcd3';
import { KvdrError, oneLine } from '../../util/errors.js';

/** Turns an etcd3 / gRPC failure into one line naming the cluster and what to do. */
export function describeEtcdError(err: unknown, endpoints: readonly string[], what: string): KvdrError {
  if (err instanceof KvdrError) return err;
  const where = `etcd ${endpoints.join(',')}`;
  const text = oneLine(err);
  let hint: string;
  if (err instanceof EtcdAuthenticationFailedError || /invalid user ID or password/i.test(text)) {
    hint = 'the credentials were rejected; check auth.username/auth.password (or ETCDCTL_USER/ETCDCTL_PASSWORD)';
  } else if (/user name is empty|GRPCUnauthenticatedError/.test(text) || err instanceof GRPCUnauthenticatedError) {
    hint = 'authentication is enabled on this cluster; set auth.username/auth.password (or ETCDCTL_USER)';
  } else if (err instanceof EtcdInvalidAuthTokenError) {
    hint = 'the auth token was refused (expired or invalidated); retry, and check the cluster auth settings';
  } else if (err instanceof EtcdPermissionDeniedError || /permission denied/i.test(text)) {
    hint = /^(write|delete)/.test(what)
      ? 'permission denied; the user needs readwrite access to every key it writes (a role with readwrite on the scope prefix)'
      : 'permission denied; the user needs read access to the scope (and the root role for snapshots)';
  } else if (/required revision has been compacted/.test(text)) {
    hint = 'the revision was compacted while it was being read; run again (a longer auto-compaction retention helps)';
  } else if (err instanceof GRPCResourceExhastedError) {
    hint = `a response exceeded a size limit (${text})`;
  } else if (err instanceof GRPCDeadlineExceededError) {
    hint = 'etcd did not answer in time; check the cluster health (etcdctl endpoint health)';
  } else if (/circuit breaker is open/i.test(text)) {
    // etcd3 stops calling a host for a few seconds after repeated failures.
    hint = 'cannot reach etcd (its last calls failed, so the client paused calling it); check the endpoints and that etcd is up';
  } else if (err instanceof GRPCUnavailableError || /ECONNREFUSED|No connection established|connect failed|UNAVAILABLE|Connection dropped|ECONNRESET/i.test(text)) {
    hint = `cannot reach etcd (${shortCause(text)}); check the endpoints and that etcd is up`;
  } else {
    hint = text;
  }
  return new KvdrError(`${where}: cannot ${what}: ${hint}`, undefined, { cause: err });
}

function shortCause(text: string): string {
  const match = /(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|No connection established|Connection dropped)/i.exec(text);
  return match?.[1] ?? text.slice(0, 120);
}

/**
 * The size of the request etcd checks against --max-request-bytes: the whole marshalled
 * InternalRaftRequest (etcdserver/v3_server.go processInternalRaftRequestOnce), i.e. the client's
 * TxnRequest plus the header etcd adds (request id, and with auth the user name and auth revision).
 * Measured against etcd 3.4 by binary search (test/integration/kv-target-etcd.test.ts): a 1-byte key
 * in a one-put Txn takes 31 bytes of overhead with a 9-byte request id, 32 with a 10-byte one.
 */

/** etcd's default --max-request-bytes (1.5 MiB). */
export const ETCD_DEFAULT_MAX_REQUEST_BYTES = 1.5 * 1024 * 1024;
/** etcd's default --max-txn-ops. */
export const ETCD_MAX_TXN_OPS = 128;
/** Reserved for a user name etcd takes from a client certificate's CN when none is configured. */
const CERT_USERNAME_BYTES = 256;
/** A uint64 varint at its widest: the request id (top 16 bits are the member id) and the auth revision. */
const MAX_UINT64_VARINT = 10;

/** Bytes of a protobuf varint. */
export function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    bytes++;
  }
  return bytes;
}

/** A length-delimited field with a one-byte tag; proto3 leaves an empty bytes field out entirely. */
export function field(length: number): number {
  return length === 0 ? 0 : 1 + varintBytes(length) + length;
}

/** A length-delimited message field with a one-byte tag: written even when empty. */
export function message(length: number): number {
  return 1 + varintBytes(length) + length;
}

/**
 * The RequestHeader etcd adds, at its widest: field 100 (two-byte tag) holding the id and, when
 * the client authenticates, the user name and auth revision.
 * @param usernameBytes the user name's length; undefined when the client does not authenticate.
 */
export function etcdHeaderBytes(usernameBytes: number | undefined): number {
  const id = 1 + MAX_UINT64_VARINT;
  const auth = usernameBytes === undefined ? 0 : field(usernameBytes) + 1 + MAX_UINT64_VARINT;
  const inner = id + auth;
  return 2 + varintBytes(inner) + inner;
}

/** The header for a connection: a configured user, else a certificate CN (unknown length), else none. */
export function etcdHeaderFor(username: string | undefined, clientCertificate: boolean): number {
  if (username !== undefined) return etcdHeaderBytes(Buffer.byteLength(username));
  return etcdHeaderBytes(clientCertificate ? CERT_USERNAME_BYTES : undefined);
}

/** One put in a Txn's success list: RequestOp{request_put: PutRequest{key, value}}. */
function putOpBytes(keyBytes: number, valueBytes: number): number {
  return message(message(field(keyBytes) + field(valueBytes)));
}

/** The marshalled InternalRaftRequest for a Txn of these puts (no compares, no failure ops). */
export function etcdTxnRequestBytes(puts: readonly { key: number; value: number }[], headerBytes: number): number {
  let txn = 0;
  for (const put of puts) txn += putOpBytes(put.key, put.value);
  return headerBytes + message(txn);
}

/** The largest value a key of this length can carry in one put under the limit (-1: none fits). */
export function largestEtcdValue(keyBytes: number, limit: number, headerBytes: number): number {
  let low = -1;
  let high = limit;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (etcdTxnRequestBytes([{ key: keyBytes, value: mid }], headerBytes) <= limit) low = mid;
    else high = mid - 1;
  }
  return low;
}

/**
 * Key+value bytes a batch of up to `ops` puts may carry and still fit the limit: each put adds at most
 * four tags and four length varints (no length exceeds the limit), the Txn one tag and one length.
 */
export function etcdBatchBytes(limit: number, ops: number, headerBytes: number): number {
  const width = varintBytes(limit);
  return limit - headerBytes - (1 + width) - ops * 4 * (1 + width);
}

import { isUtf8 } from 'node:buffer';

/**
 * What Consul's KV API does to keys, measured against Consul 1.20 (test/integration/kv-target-consul.test.ts)
 * and read in its source (agent/kvs_endpoint.go, agent/txn_endpoint.go, agent/http.go):
 * - keys are Go strings sent as JSON text: bytes that are not UTF-8 would come back as U+FFFD;
 * - the empty key is refused by both APIs ("Missing key name", "Must provide key");
 * - `PUT /v1/txn` carries the key in the JSON body and stores every other UTF-8 string exactly
 *   (control characters, NUL, "..", "//", a leading "/", 400 KiB keys included);
 * - `PUT /v1/kv/<key>` carries it in the URL path: a WHATWG URL (Node's URL, fetch) resolves `.`/`..`
 *   segments, `%2E%2E` included, before sending — the write lands on another key; sent as is, Go's
 *   ServeMux answers 307 to the cleaned path (`.`, `..`, `//`, leading `/`), which a client that follows
 *   redirects obeys; percent-encoded (%2E, %2F) Consul 1.20 stores the key exactly, but servers built
 *   before Go 1.22 and proxies may still clean it; Consul answers 400 to a path with a character Go's
 *   unicode.IsPrint rejects (controls, DEL, C1, NBSP, zero-width and line separators ...).
 * So a key the URL cannot carry exactly may only travel in a transaction body.
 */

/** Consul's default kv_max_value_size (and txn_max_req_len): 512 KiB. */
export const CONSUL_DEFAULT_MAX_VALUE_BYTES = 512 * 1024;
/** Operations per transaction every Consul version accepts (1.20 allows 128). */
export const CONSUL_TXN_OPS = 64;
/** Longest escaped key kvdr sends in a URL; Go's default header limit is 1 MiB, and a proxy may allow far less. */
export const MAX_URL_KEY_BYTES = 64 * 1024;
/** JSON of one set op around its key, value and flags: `{"KV":{"Verb":"set","Key":,"Value":"","Flags":}}` plus a comma. */
const SET_OP_FRAME = '{"KV":{"Verb":"set","Key":,"Value":"","Flags":}},'.length;
/** Digits of the largest flags value (uint64). */
const MAX_FLAGS_DIGITS = 20;

/** Why Consul cannot hold this key at all, whatever its value; undefined if it can. */
export function unstorableKey(key: Buffer): string | undefined {
  if (key.length === 0) return 'Consul does not allow an empty key';
  if (!isUtf8(key)) return 'Consul keys are UTF-8 text and this key is not valid UTF-8 (Consul would store U+FFFD in place of its bytes)';
  return undefined;
}

/**
 * Why this key cannot travel exactly in a `/v1/kv/<key>` URL path; undefined if it can. Checked on the
 * text, segment by segment: `.`, `..` and empty segments (a leading `/`, `//`) are resolved by URL
 * parsers, proxies and older Go servers even when percent-encoded; a trailing `/` is kept by all of them.
 */
export function urlUnsafeKey(key: string): string | undefined {
  const segments = key.split('/');
  const last = segments.length - 1;
  for (const [i, segment] of segments.entries()) {
    if (segment === '.' || segment === '..') return `its "${segment}" path segment would be resolved by the URL`;
    if (segment === '' && i < last) return `its ${i === 0 ? 'leading "/"' : '"//"'} would be merged by the URL`;
  }
  // Consul's PrintablePathCheckHandler answers 400 to anything Go's unicode.IsPrint rejects.
  if (!/^[\p{L}\p{M}\p{N}\p{P}\p{S} ]*$/u.test(key)) return 'it has a non-printable character, which Consul refuses in a URL';
  if (keyPath(key).length > MAX_URL_KEY_BYTES) return `it is longer than ${MAX_URL_KEY_BYTES} bytes escaped, too long for a URL`;
  return undefined;
}

/**
 * The key as a URL path under /v1/kv/: each segment percent-encoded, the slashes kept. A `.`/`..`
 * segment is written %2E and an empty one's slash %2F so that neither the client nor Consul (Go 1.22+
 * cleans the escaped path) resolves it; callers still refuse such keys (see urlUnsafeKey), because an
 * older server or a proxy may decode first and clean after.
 */
export function keyPath(key: Buffer | string): string {
  const path = key
    .toString()
    .split('/')
    .map((segment) => (segment === '.' || segment === '..' ? segment.replaceAll('.', '%2E') : encodeURIComponent(segment)))
    .join('/');
  return path.replace(/^\//, '%2F').replaceAll('//', '/%2F');
}

/** One `set` operation of a transaction body. */
export function setOp(key: Buffer, value: Buffer, flags: number): object {
  return { KV: { Verb: 'set', Key: key.toString('utf8'), Value: value.toString('base64'), Flags: flags } };
}

/** The largest body a `PUT /v1/txn` may have: Consul takes the larger of txn_max_req_len (512 KiB) and kv_max_value_size. */
export function txnBodyLimit(maxValueBytes: number): number {
  return Math.max(CONSUL_DEFAULT_MAX_VALUE_BYTES, maxValueBytes);
}

/** The body of a one-op transaction at its largest flags, without building the value's base64. */
export function singleSetBodyBytes(key: Buffer, valueBytes: number): number {
  return 2 + SET_OP_FRAME - 1 + Buffer.byteLength(JSON.stringify(key.toString('utf8'))) + 4 * Math.ceil(valueBytes / 3) + MAX_FLAGS_DIGITS;
}

/**
 * Key+value bytes a batch of `ops` sets may carry and still fit the body limit whatever the keys hold:
 * JSON writes a key byte as at most 6 (`\u0001`), base64 a value byte as 4/3, plus each op's frame.
 */
export function txnBatchBytes(bodyLimit: number, ops: number): number {
  // Per op beyond 6 bytes a key byte: the frame, the key's quotes, base64 padding (at most 3), the flags.
  return Math.floor((bodyLimit - 2 - ops * (SET_OP_FRAME + 2 + 3 + MAX_FLAGS_DIGITS)) / 6);
}

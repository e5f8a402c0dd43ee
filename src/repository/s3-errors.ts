import { RepositoryError } from '../util/errors.js';

interface S3Failure {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/**
 * Turns an SDK or network failure into one line that names the bucket and what to do.
 * `where` is the store's location (`s3://bucket/prefix`), `what` the operation being attempted.
 */
export function describeS3Error(err: unknown, where: string, what: string): RepositoryError {
  const e = (err ?? {}) as S3Failure;
  const name = e.name ?? e.code ?? '';
  const status = e.$metadata?.httpStatusCode;
  let hint: string;
  switch (name) {
    case 'NoSuchBucket':
      hint = 'the bucket does not exist; create it (with versioning and object lock if configured) or fix the repository bucket';
      break;
    case 'AccessDenied':
    case 'Forbidden':
      hint = 'access denied; grant the credentials s3:PutObject, s3:GetObject, s3:ListBucket and s3:DeleteObject on the bucket';
      break;
    case 'InvalidAccessKeyId':
    case 'SignatureDoesNotMatch':
    case 'InvalidToken':
    case 'ExpiredToken':
      hint = `the credentials were rejected (${name}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the repository credentials`;
      break;
    case 'CredentialsProviderError':
      hint = 'no AWS credentials found; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or repository credentials';
      break;
    case 'PermanentRedirect':
    case 'AuthorizationHeaderMalformed':
      hint = 'the bucket is in another region; fix the repository region';
      break;
    default:
      if (isNetworkError(err)) hint = `cannot reach the S3 endpoint (${networkCode(err)}); check the endpoint and that the service is up`;
      else if (status === 403) hint = 'access denied (HTTP 403); check the bucket policy and credentials';
      else if (status === 404) hint = 'not found (HTTP 404); check the bucket name and region';
      else hint = `${name || 'error'}${status ? ` (HTTP ${status})` : ''}: ${firstLine(e.message)}`;
  }
  return new RepositoryError(`${where}: cannot ${what}: ${hint}`, { cause: err });
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'TimeoutError', 'EHOSTUNREACH']);

function networkCode(err: unknown): string {
  const e = err as { code?: string; name?: string; cause?: unknown; errors?: unknown[] };
  if (e.code && NETWORK_CODES.has(e.code)) return e.code;
  if (e.name && NETWORK_CODES.has(e.name)) return e.name;
  for (const inner of [e.cause, ...(e.errors ?? [])]) {
    if (inner && typeof inner === 'object') {
      const code = networkCode(inner);
      if (code) return code;
    }
  }
  return '';
}

export function isNetworkError(err: unknown): boolean {
  return networkCode(err) !== '';
}

function firstLine(text: string | undefined): string {
  return (text ?? 'unknown error').split('\n')[0] ?? '';
}

/** True when the SDK reports the object (or version) does not exist. */
export function isNotFound(err: unknown): boolean {
  const e = (err ?? {}) as S3Failure;
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || (e.$metadata?.httpStatusCode === 404 && e.name !== 'NoSuchBucket');
}

/** True when a conditional write (If-None-Match: *) found the key already present. */
export function isPreconditionFailed(err: unknown): boolean {
  const e = (err ?? {}) as S3Failure;
  return e.name === 'PreconditionFailed' || e.$metadata?.httpStatusCode === 412;
}

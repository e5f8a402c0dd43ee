import { describe, expect, it } from 'vitest';
import { describeS3Error, isNotFound, isPreconditionFailed } from '../../src/repository/s3-errors.js';

const where = 's3://bkt/prod/ (us-west-2)';
const sdkError = (name: string, status: number): Error => Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status } });

describe('S3 error descriptions', () => {
  it.each([
    ['NoSuchBucket', 404, 'the bucket does not exist'],
    ['AccessDenied', 403, 'access denied; grant the credentials s3:PutObject'],
    ['InvalidAccessKeyId', 403, 'the credentials were rejected (InvalidAccessKeyId)'],
    ['SignatureDoesNotMatch', 403, 'the credentials were rejected (SignatureDoesNotMatch)'],
    ['ExpiredToken', 400, 'the credentials were rejected (ExpiredToken)'],
    ['PermanentRedirect', 301, 'the bucket is in another region'],
    ['SlowDown', 503, 'SlowDown (HTTP 503): SlowDown happened'],
  ])('%s names the bucket and the fix in one line', (name, status, hint) => {
    const err = describeS3Error(sdkError(name, status), where, 'upload data/x');
    expect(err.message.startsWith(`${where}: cannot upload data/x: `)).toBe(true);
    expect(err.message).toContain(hint);
    expect(err.message).not.toContain('\n');
  });

  it('finds network failures nested in the cause chain', () => {
    const nested = Object.assign(new Error('fetch failed'), { cause: Object.assign(new Error('connect'), { code: 'ECONNREFUSED' }) });
    expect(describeS3Error(nested, where, 'list /').message).toContain('cannot reach the S3 endpoint (ECONNREFUSED)');
  });

  it('tells missing objects and lost write races apart from other failures', () => {
    expect(isNotFound(sdkError('NoSuchKey', 404))).toBe(true);
    expect(isNotFound(sdkError('NotFound', 404))).toBe(true);
    expect(isNotFound(sdkError('NoSuchBucket', 404))).toBe(false);
    expect(isPreconditionFailed(sdkError('PreconditionFailed', 412))).toBe(true);
    expect(isPreconditionFailed(sdkError('AccessDenied', 403))).toBe(false);
  });
});

// Appends N events to an audit trail in MinIO, then times reading and checking the whole chain
// (kvdr audit --verify-log) and a full `kvdr audit` over it. Usage: node bench/audit-trail.mjs <events>
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { appendAuditEvent } from '../dist/audit/audit-log.js';
import { S3Store } from '../dist/repository/s3-store.js';

const events = Number(process.argv[2] ?? 2000);
const env = process.env;
const credentials = { accessKeyId: env.KVDR_S3_ACCESS_KEY, secretAccessKey: env.KVDR_S3_SECRET_KEY };
const bucket = `kvdr-bench-trail-${Date.now()}`;
await new S3Client({ region: env.KVDR_S3_REGION, endpoint: env.KVDR_S3_ENDPOINT, forcePathStyle: true, credentials }).send(new CreateBucketCommand({ Bucket: bucket }));
const repository = { name: 'dr', type: 's3', bucket, region: env.KVDR_S3_REGION, endpoint: env.KVDR_S3_ENDPOINT, forcePathStyle: true, prefix: '', partSizeMiB: 5, queueSize: 4, credentials };
const store = new S3Store(repository);
let started = performance.now();
for (let i = 0; i < events; i++) {
  await appendAuditEvent(store, 'backup', { backup: `b${i}`, job: 'hourly', kind: 'etcd-export', repository: 'dr', key: `data/hourly/b${i}`, startedAt: new Date().toISOString(), finishedAt: new Date().toISOString() });
}
const append = performance.now() - started;
await store.close();

const dir = mkdtempSync(join(tmpdir(), 'kvdr-bench-'));
const config = join(dir, 'kvdr.yaml');
writeFileSync(config, JSON.stringify({ sources: [{ name: 'e', type: 'etcd', endpoints: [env.KVDR_ETCD_ENDPOINT], region: 'eu-west-1' }], repositories: [repository], jobs: [{ name: 'hourly', source: 'e', kind: 'etcd-export', schedule: '0 * * * *', repository: 'dr' }] }));
const time = (args) => {
  const t = performance.now();
  try {
    execFileSync(process.execPath, ['dist/cli/kvdr.js', '--config', config, ...args], { stdio: 'ignore' });
  } catch {
    // exit 5 (controls fail on this synthetic history) is expected; only the time matters here
  }
  return performance.now() - t;
};
const verifyLog = time(['audit', '--verify-log']);
const audit = time(['audit', '--since', '400d', '--format', 'json']);
console.log(`| ${events} | ${(append / events).toFixed(1)} ms | ${(verifyLog / 1000).toFixed(2)} s | ${(audit / 1000).toFixed(2)} s |`);

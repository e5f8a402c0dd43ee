// Seeds the demo stack: a Portworx-like keyspace in etcd and Consul, and the demo bucket in MinIO
// (versioning and object lock on, as a production DR bucket should have). Safe to run again.
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { Etcd3 } from 'etcd3';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run through scripts/demo.sh`);
  return value;
};

const cluster = 'pwx/demo-cluster-1/';
const keys = {
  'cluster/info': JSON.stringify({ id: 'demo-cluster-1', status: 'ok' }),
  'nodes/node-1': JSON.stringify({ id: 'node-1', ip: '10.0.0.11' }),
  'nodes/node-2': JSON.stringify({ id: 'node-2', ip: '10.0.0.12' }),
  'volumes/vol-1': JSON.stringify({ id: 'vol-1', size: 10737418240, replicas: 2 }),
  'volumes/vol-2': JSON.stringify({ id: 'vol-2', size: 5368709120, replicas: 3 }),
};

const etcd = new Etcd3({ hosts: [env('KVDR_ETCD_ENDPOINT')] });
try {
  for (const [k, v] of Object.entries(keys)) await etcd.put(cluster + k).value(v);
} finally {
  etcd.close();
}

const consul = env('KVDR_CONSUL_ADDR');
for (const [k, v] of Object.entries(keys)) {
  const res = await fetch(`${consul}/v1/kv/pwx/demo-cluster-2/${k}`, { method: 'PUT', body: v });
  if (!res.ok) throw new Error(`consul PUT ${k}: HTTP ${res.status}`);
}

const s3 = new S3Client({
  region: env('KVDR_S3_REGION'),
  endpoint: env('KVDR_S3_ENDPOINT'),
  forcePathStyle: true,
  credentials: { accessKeyId: env('KVDR_S3_ACCESS_KEY'), secretAccessKey: env('KVDR_S3_SECRET_KEY') },
});
try {
  await s3.send(new HeadBucketCommand({ Bucket: 'kvdr-demo' }));
} catch {
  await s3.send(new CreateBucketCommand({ Bucket: 'kvdr-demo', ObjectLockEnabledForBucket: true }));
}
s3.destroy();
console.log(`seeded ${Object.keys(keys).length} keys under pwx/demo-cluster-1/ (etcd) and pwx/demo-cluster-2/ (consul); bucket kvdr-demo ready`);

import { randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/repository/open-store.js';
import { kvdr } from '../harness/cli.js';
import { stopServer } from '../harness/child-process.js';
import { consulPut } from '../harness/consul-instance.js';
import { chainEvents, consulStateNow, randomConsulWrites, startServe } from '../harness/continuous.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { freePorts } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';

const WRITE_SECONDS = Number(process.env['KVDR_CONTINUOUS_WRITE_SECONDS'] ?? 60);

describe('consul-continuous: kvdr serve follows blocking queries; any index restores the state Consul answered', () => {
  let bucket: TestBucket;
  let dir: string;
  const consul = (): string => requireEnv('KVDR_CONSUL_ADDR');
  const env = (): NodeJS.ProcessEnv => ({ AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'), AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY') });

  beforeAll(async () => {
    bucket = await createTestBucket('continuous-consul');
    dir = await mkdtemp(join(tmpdir(), 'kvdr-continuous-consul-'));
  });
  afterAll(async () => {
    await bucket.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it('a minute of random puts, flags, overwrites, deletes and re-creates: 20 random indexes restore exactly', async () => {
    const prefix = `${uniqueName('ccont')}/`;
    await consulPut(consul(), `${prefix}seed`, 'seed', undefined, 3);
    const [port] = await freePorts(1);
    const configPath = join(dir, 'serve.yaml');
    const serve = await startServe(
      configPath,
      `sources: [{name: c, type: consul, endpoints: ["${consul()}"], prefix: "${prefix}"}]\n` +
        `repositories:\n  - {name: dr, type: s3, bucket: ${bucket.name}, region: us-east-1, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true}\n` +
        `  - {name: audit, type: fs, path: ${join(dir, 'audit')}}\n` +
        `jobs: [{name: ccont, source: c, kind: consul-continuous, schedule: "0 0 1 1 *", repository: dr, continuous: {segmentSeconds: 1, spoolDir: ${join(dir, 'spool')}}}]\n` +
        `audit: {repository: audit}\nservice: {listen: "127.0.0.1:${port}"}\n`,
      env(),
    );
    const store = openStore({ name: 'dr', type: 's3', bucket: bucket.name, region: 'us-east-1', endpoint: requireEnv('KVDR_S3_ENDPOINT'), forcePathStyle: true, prefix: '', partSizeMiB: 5, queueSize: 2, credentials: { accessKeyId: requireEnv('KVDR_S3_ACCESS_KEY'), secretAccessKey: requireEnv('KVDR_S3_SECRET_KEY') } });
    let states: Awaited<ReturnType<typeof randomConsulWrites>> = [];
    let baseIndex = 0;
    try {
      await waitFor(async () => (await chainEvents(store, 'ccont').catch(() => undefined)) !== undefined, `a base (serve said: ${serve.output().slice(-400)})`);
      baseIndex = (await chainEvents(store, 'ccont')).baseRevision;
      states = await randomConsulWrites(consul(), prefix, WRITE_SECONDS * 1000);
      const last = (await consulStateNow(consul(), prefix)).index;
      await waitFor(async () => (await chainEvents(store, 'ccont')).last >= last, 'the chain to reach the last write', 30_000).catch((err: unknown) => {
        throw new Error(`${String(err)}; serve said: ${serve.output().slice(-3000)}`);
      });
    } finally {
      await stopServer(serve.child, join(dir, 'nothing'));
      await store.close();
    }
    const chosen = [...new Set(Array.from({ length: 20 }, () => states[randomInt(states.length)] as (typeof states)[number]))].filter((s) => s.index > baseIndex);
    for (const [i, point] of chosen.entries()) {
      const scratch = `${uniqueName('cpitr')}/${i}/`;
      const result = await kvdr(['--config', configPath, 'restore-from-s3', '--at', `index:${point.index}`, '--job', 'ccont', '--target', `consul:${consul()}`, '--to-prefix', scratch], env());
      expect(result.code, result.stderr).toBe(0);
      expect((await consulStateNow(consul(), scratch)).state, `index ${point.index}`).toEqual(point.state);
    }
  }, (WRITE_SECONDS + 240) * 1000);
});

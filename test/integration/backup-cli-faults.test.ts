import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';

import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr, type CliResult } from '../harness/cli.js';
import { consulPut, startConsul } from '../harness/consul-instance.js';
import { fillEtcd } from '../harness/etcd-fill.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import { createTestBucket, minioClient } from '../harness/minio.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { listen, tcpRelay, type Relay } from '../harness/tcp-relay.js';

/**
 * `kvdr backup` as an operator runs it, against real services that fail: each failure is one line on
 * stderr, exit 1, and no manifest (a backup that is not listed does not exist). Where the fault is in
 * the bytes a service sends (a corrupt etcd snapshot, a damaged Consul archive), the real service's
 * stream passes through a relay on loopback that damages it, as a faulty network or middlebox would.
 */
describe('kvdr backup failures at the command line: one line, exit 1, nothing listed', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-backup-cli-faults-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function configFile(yaml: string): Promise<string> {
    const path = join(dir, `${uniqueName('cfg')}.yaml`);
    await writeFile(path, yaml);
    return path;
  }

  async function manifestsIn(repo: string): Promise<string[]> {
    const names = await readdir(join(repo, 'manifests'), { recursive: true }).catch(() => []);
    return names.filter((n) => n.endsWith('.json'));
  }

  function expectOneLineFailure(result: CliResult, pattern: RegExp): void {
    expect(result.stderr.trim().split('\n'), result.stderr).toHaveLength(1);
    expect(result.stderr.trim()).toMatch(pattern);
    expect(result.code, result.stderr).toBe(ExitCode.Failure);
    expect(result.stdout).toBe('');
  }

  it('S3 access denied: names it and the permissions to grant', async () => {
    const bucket = await createTestBucket('backup-denied');
    try {
      const credentials = await credentialsDenying('s3:PutObject', bucket.name);
      const etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
      const prefix = `${uniqueName('denied')}/`;
      await etcd.put(`${prefix}a`).value('1');
      const path = await configFile(
        `sources: [{name: src, type: etcd, endpoints: ["${requireEnv('KVDR_ETCD_ENDPOINT')}"], prefix: "${prefix}"}]\n` +
          `repositories:\n  - {name: dr, type: s3, bucket: ${bucket.name}, region: ${requireEnv('KVDR_S3_REGION')}, endpoint: "${requireEnv('KVDR_S3_ENDPOINT')}", forcePathStyle: true,\n` +
          `     credentials: {accessKeyId: "${credentials.accessKeyId}", secretAccessKey: "${credentials.secretAccessKey}", sessionToken: "${credentials.sessionToken}"}}\n` +
          `jobs: [{name: export, source: src, kind: etcd-export, schedule: "0 * * * *", repository: dr}]\n`,
      );
      try {
        // The credentials are good (listing works): only writing is denied.
        expect((await kvdr(['--config', path, '--log-level', 'silent', 'backups', 'list'])).code).toBe(0);
        const result = await kvdr(['--config', path, '--log-level', 'silent', 'backup', 'export']);
        expectOneLineFailure(result, /^kvdr: s3:\/\/.*: cannot upload data\/export\/\S+: access denied; grant the credentials s3:PutObject, /);
      } finally {
        await etcd.delete().prefix(prefix);
        etcd.close();
      }
      const root = minioClient();
      try {
        const listed = await root.send(new ListObjectsV2Command({ Bucket: bucket.name }));
        expect((listed.Contents ?? []).map((o) => o.Key)).toEqual([]);
      } finally {
        root.destroy();
      }
    } finally {
      await bucket.remove();
    }
  });

  it('wrong etcd credentials: says they were rejected, for both kinds', async () => {
    const secured = await startEtcd({ rootPassword: 'r00t-pw' });
    try {
      await secured.ctl('put', 'pwx/c1/a', '1');
      const repo = join(dir, uniqueName('etcd-auth'));
      const write = (password: string): Promise<string> =>
        configFile(
          `sources: [{name: src, type: etcd, endpoints: ["${secured.endpoint}"], clusterId: c1, auth: {username: root, password: "${password}"}}]\n` +
            `repositories: [{name: dr, type: fs, path: "${repo}"}]\n` +
            `jobs: [{name: snap, source: src, kind: etcd-snapshot, schedule: "0 * * * *", repository: dr},\n` +
            `       {name: export, source: src, kind: etcd-export, schedule: "0 * * * *", repository: dr}]\n`,
        );
      const wrong = await write('not-the-password');
      for (const job of ['snap', 'export']) {
        const result = await kvdr(['--config', wrong, '--log-level', 'silent', 'backup', job]);
        expectOneLineFailure(result, /^kvdr: etcd http:\/\/127\.0\.0\.1:\d+: cannot .*: the credentials were rejected; check auth\.username\/auth\.password/);
      }
      expect(await manifestsIn(repo)).toEqual([]);
      // The same config with the right password works: it was the credentials.
      expect((await kvdr(['--config', await write('r00t-pw'), '--log-level', 'silent', 'backup', 'export'])).code).toBe(0);
      expect(await manifestsIn(repo)).toHaveLength(1);
    } finally {
      await secured.stop();
    }
  });

  describe('an etcd snapshot damaged on its way (real etcd, one byte flipped in transit)', () => {
    let etcd: EtcdInstance;
    beforeAll(async () => {
      etcd = await startEtcd();
      const client = connectEtcd({ endpoints: [etcd.endpoint] }, {});
      await fillEtcd(client, 'pwx/c1/', 48, 64 * 1024); // a few MiB: many 32 KiB snapshot messages
      client.close();
    });
    afterAll(async () => {
      await etcd.stop();
    });

    async function backupThrough(corruption: Corruption | undefined): Promise<{ result: CliResult; repo: string; flipped: boolean }> {
      const damage = corruption ? grpcSnapshotCorrupter(corruption) : undefined;
      const relay = await tcpRelay(Number(new URL(etcd.endpoint).port), damage ? { downstream: damage.transform } : {});
      const repo = join(dir, uniqueName(`etcd-${corruption ?? 'intact'}`));
      try {
        const path = await configFile(
          `sources: [{name: src, type: etcd, endpoints: ["http://127.0.0.1:${relay.port}"], clusterId: c1}]\n` +
            `repositories: [{name: dr, type: fs, path: "${repo}"}]\n` +
            `jobs: [{name: snap, source: src, kind: etcd-snapshot, compression: none, schedule: "0 * * * *", repository: dr}]\n`,
        );
        const result = await kvdr(['--config', path, '--log-level', 'silent', 'backup', 'snap']);
        return { result, repo, flipped: damage?.flipped() ?? false };
      } finally {
        await relay.close();
      }
    }

    it('passes through the relay untouched when nothing is flipped', async () => {
      const { result, repo } = await backupThrough(undefined);
      expect(result.code, result.stderr).toBe(0);
      expect(await manifestsIn(repo)).toHaveLength(1);
    });

    it.each(['database', 'trailer'] as const)('fails on a flipped byte in the %s: exit 1 (not 4), one line naming the source', async (corruption) => {
      const { result, repo, flipped } = await backupThrough(corruption);
      expect(flipped).toBe(true);
      expectOneLineFailure(result, /^kvdr: etcd snapshot from http:\/\/127\.0\.0\.1:\d+: sha256 trailer mismatch .*the snapshot is corrupt and was not stored$/);
      expect(await manifestsIn(repo)).toEqual([]);
      expect(await readdir(join(repo, 'data', 'snap')).catch(() => [])).toEqual([]);
    });
  });

  it('Consul without a leader: says so, for both kinds', async () => {
    const leaderless = await startConsul({ bootstrapExpect: 3 });
    try {
      const repo = join(dir, uniqueName('consul-leaderless'));
      const path = await configFile(
        `sources: [{name: c, type: consul, endpoints: ["${leaderless.address}"]}]\n` +
          `repositories: [{name: dr, type: fs, path: "${repo}"}]\n` +
          `jobs: [{name: snap, source: c, kind: consul-snapshot, schedule: "0 * * * *", repository: dr},\n` +
          `       {name: export, source: c, kind: consul-export, schedule: "0 * * * *", repository: dr}]\n`,
      );
      for (const job of ['snap', 'export']) {
        const result = await kvdr(['--config', path, '--log-level', 'silent', 'backup', job]);
        expectOneLineFailure(result, /^kvdr: consul http:\/\/127\.0\.0\.1:\d+: cannot .*: Consul has no cluster leader; wait for an election/);
      }
      expect(await manifestsIn(repo)).toEqual([]);
    } finally {
      await leaderless.stop();
    }
  });

  it('Consul stopped in the middle of a large export', async () => {
    const consul = await startConsul();
    const relay = { current: undefined as Relay | undefined };
    try {
      const prefix = 'px/';
      for (let i = 0; i < 60; i++) await consulPut(consul.address, `${prefix}${String(i).padStart(3, '0')}`, randomBytes(500 * 1024));
      let killed = false;
      // The relay only watches the bytes go by; Consul is killed outright once 2 MiB of its answer are through.
      relay.current = await tcpRelay(Number(new URL(consul.address).port), {
        onBytes: (total) => {
          if (!killed && total > 2 * 1024 * 1024) {
            killed = true;
            consul.kill();
          }
        },
      });
      const repo = join(dir, uniqueName('consul-stopped'));
      const path = await configFile(
        `sources: [{name: c, type: consul, endpoints: ["http://127.0.0.1:${relay.current.port}"], prefix: "${prefix}"}]\n` +
          `repositories: [{name: dr, type: fs, path: "${repo}"}]\n` +
          `jobs: [{name: export, source: c, kind: consul-export, compression: none, schedule: "0 * * * *", repository: dr}]\n`,
      );
      const result = await kvdr(['--config', path, '--log-level', 'silent', 'backup', 'export']);
      expect(killed).toBe(true);
      expectOneLineFailure(result, /^kvdr: consul http:\/\/127\.0\.0\.1:\d+: cannot export px\/: the connection to Consul broke off mid-stream \(ECONNRESET\); check that the agent is up and run the backup again$/);
      expect(await manifestsIn(repo)).toEqual([]);
      expect(await readdir(join(repo, 'data', 'export')).catch(() => [])).toEqual([]);
    } finally {
      await relay.current?.close();
      await consul.stop();
    }
  }, 180_000);

  describe('a Consul snapshot damaged on its way (real Consul, archive rewritten in transit)', () => {
    async function backupThrough(rewrite: (snapshot: Buffer) => Buffer): Promise<{ result: CliResult; repo: string }> {
      const proxy = await snapshotRewritingProxy(requireEnv('KVDR_CONSUL_ADDR'), rewrite);
      const repo = join(dir, uniqueName('consul-damaged'));
      try {
        const path = await configFile(
          `sources: [{name: c, type: consul, endpoints: ["${proxy.address}"]}]\n` +
            `repositories: [{name: dr, type: fs, path: "${repo}"}]\n` +
            `jobs: [{name: snap, source: c, kind: consul-snapshot, schedule: "0 * * * *", repository: dr}]\n`,
        );
        return { result: await kvdr(['--config', path, '--log-level', 'silent', 'backup', 'snap']), repo };
      } finally {
        await proxy.close();
      }
    }

    it('passes through the proxy untouched when nothing is rewritten', async () => {
      const { result, repo } = await backupThrough((snapshot) => snapshot);
      expect(result.code, result.stderr).toBe(0);
      expect(await manifestsIn(repo)).toHaveLength(1);
    });

    it.each([
      ['state.bin no longer matching SHA256SUMS', (s: Buffer) => tamperTarMember(s, 'state.bin'), /SHA256SUMS mismatch for state\.bin .*the snapshot is corrupt and was not stored$/],
      ['meta.json no longer matching SHA256SUMS', (s: Buffer) => tamperTarMember(s, 'meta.json'), /SHA256SUMS mismatch for meta\.json /],
      ['the stream cut in half (ending cleanly)', (s: Buffer) => s.subarray(0, Math.floor(s.length / 2)), /the archive is damaged or cut short|archive lacks/],
    ] as const)('fails on %s: exit 1 (not 4), one line naming the source', async (_what, rewrite, pattern) => {
      const { result, repo } = await backupThrough(rewrite);
      expectOneLineFailure(result, /^kvdr: consul snapshot from http:\/\/127\.0\.0\.1:\d+: /);
      expect(result.stderr.trim()).toMatch(pattern);
      expect(await manifestsIn(repo)).toEqual([]);
      expect(await readdir(join(repo, 'data', 'snap')).catch(() => [])).toEqual([]);
    });
  });
});

/** Temporary credentials from MinIO's STS AssumeRole (root credentials) whose session policy denies one action. */
async function credentialsDenying(action: string, bucket: string): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken: string }> {
  const sts = new STSClient({
    region: requireEnv('KVDR_S3_REGION'),
    endpoint: requireEnv('KVDR_S3_ENDPOINT'),
    credentials: { accessKeyId: requireEnv('KVDR_S3_ACCESS_KEY'), secretAccessKey: requireEnv('KVDR_S3_SECRET_KEY') },
  });
  const resources = [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`];
  const policy = {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow', Action: ['s3:*'], Resource: resources },
      { Effect: 'Deny', Action: [action], Resource: resources },
    ],
  };
  try {
    const out = await sts.send(new AssumeRoleCommand({ RoleArn: 'arn:minio:iam:::role/kvdr-test', RoleSessionName: 'kvdr-test', DurationSeconds: 900, Policy: JSON.stringify(policy) }));
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken) throw new Error('AssumeRole returned no credentials');
    return { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken };
  } finally {
    sts.destroy();
  }
}

type Corruption = 'database' | 'trailer';

/**
 * Flips one byte of an etcd snapshot as it crosses an HTTP/2 (h2c) connection from etcd to the client.
 * It follows the frames and, inside DATA frames, the gRPC messages of each stream, so the flipped byte
 * is inside the snapshot's bytes and nowhere else (gRPC over h2c has no checksum of its own to notice):
 * `database` flips the middle byte of a 32 KiB chunk of the bbolt file, `trailer` the last byte of the
 * final small message, which carries the 32-byte sha256. Only a stream that has carried 256 KiB (the
 * snapshot, not the Status call before it) is touched, and only once.
 */
function grpcSnapshotCorrupter(corruption: Corruption): { transform: () => Transform; flipped: () => boolean } {
  let flipped = false;
  const transform = (): Transform => {
    let pending = Buffer.alloc(0);
    const streams = new Map<number, { prefix: number[]; length?: number; at: number; seen: number }>();
    const inspect = (frame: Buffer): void => {
      const streamId = frame.readUInt32BE(5) & 0x7fffffff;
      let start = 9;
      let end = frame.length;
      if (((frame[4] as number) & 0x8) !== 0) {
        start = 10; // PADDED: a pad-length byte, then the padding at the end
        end -= frame[9] as number;
      }
      let state = streams.get(streamId);
      if (!state) streams.set(streamId, (state = { prefix: [], at: 0, seen: 0 }));
      let i = start;
      while (i < end) {
        if (state.length === undefined) {
          state.prefix.push(frame[i] as number);
          i++;
          if (state.prefix.length === 5) {
            const length = Buffer.from(state.prefix).readUInt32BE(1);
            state.prefix = [];
            if (length > 0) Object.assign(state, { length, at: 0 });
          }
          continue;
        }
        const n = Math.min(end - i, state.length - state.at);
        if (!flipped && state.seen > 256 * 1024) {
          const target =
            corruption === 'database' && state.length >= 16 * 1024 ? Math.floor(state.length / 2)
            : corruption === 'trailer' && state.length >= 32 && state.length < 512 ? state.length - 1
            : -1;
          if (target >= state.at && target < state.at + n) {
            const index = i + (target - state.at);
            frame[index] = (frame[index] as number) ^ 0xff;
            flipped = true;
          }
        }
        state.at += n;
        state.seen += n;
        i += n;
        if (state.at === state.length) delete state.length;
      }
    };
    return new Transform({
      transform(chunk: Buffer, _encoding, done: TransformCallback) {
        pending = Buffer.concat([pending, chunk]);
        const out: Buffer[] = [];
        while (pending.length >= 9) {
          const size = 9 + pending.readUIntBE(0, 3);
          if (pending.length < size) break;
          const frame = Buffer.from(pending.subarray(0, size));
          pending = pending.subarray(size);
          if (frame[3] === 0x0) inspect(frame); // DATA
          out.push(frame);
        }
        done(null, Buffer.concat(out));
      },
    });
  };
  return { transform, flipped: () => flipped };
}

/** An HTTP proxy to a Consul agent that hands `GET /v1/snapshot` answers to `rewrite` and everything else on as is. */
async function snapshotRewritingProxy(target: string, rewrite: (snapshot: Buffer) => Buffer): Promise<{ address: string; close(): Promise<void> }> {
  const server = createHttpServer((req, res) => {
    const upstream = httpRequest(new URL(req.url ?? '/', target), { method: req.method ?? 'GET', headers: req.headers }, (answer) => {
      if (!(req.url ?? '').startsWith('/v1/snapshot') || answer.statusCode !== 200) {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
        return;
      }
      const parts: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => parts.push(chunk));
      answer.on('end', () => {
        const headers: IncomingHttpHeaders = { ...answer.headers };
        delete headers['content-length'];
        delete headers['transfer-encoding'];
        res.writeHead(200, headers);
        res.end(rewrite(Buffer.concat(parts)));
      });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const port = await listen(server);
  return {
    address: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Flips one byte inside a tar member of a Consul snapshot (under the gzip), so that only SHA256SUMS can notice. */
function tamperTarMember(snapshot: Buffer, member: string): Buffer {
  const tar = gunzipSync(snapshot);
  const header = tar.indexOf(Buffer.from(member));
  const at = header + 512 + 10; // inside the member's first data block
  tar[at] = (tar[at] as number) ^ 0xff;
  return gzipSync(tar);
}

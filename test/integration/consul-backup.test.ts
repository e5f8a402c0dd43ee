import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { runBackup } from '../../src/backup/run-backup.js';
import type { Manifest } from '../../src/repository/manifest.js';
import { createLogger, type Logger } from '../../src/util/logger.js';
import { kvdr } from '../harness/cli.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { consulPairs, consulPut, startConsul, type ConsulInstance } from '../harness/consul-instance.js';
import { failureOf } from '../harness/failure.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';

/** A JSON logger whose lines the test can read. */
function capturingLogger(): { logger: Logger; lines: () => { level: number; msg: string }[] } {
  let text = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  const logger = createLogger({ level: 'info', pretty: false, destination });
  return { logger, lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string }) };
}

describe('Consul backups', () => {
  let dir: string;
  let prefix: string;
  const shared = (): string => requireEnv('KVDR_CONSUL_ADDR');

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-consul-backup-'));
    prefix = `${uniqueName('consul-backup')}/`;
    await consulPut(shared(), `${prefix}cluster/info`, '{"id":"c1"}');
    await consulPut(shared(), `${prefix}bin`, Buffer.from([0x00, 0xff, 0x80, 0x01]), undefined, 42);
    await consulPut(shared(), `${prefix}empty`, '');
    await consulPut(shared(), `${prefix}unicode/ключ`, 'значение');
    await consulPut(shared(), `${prefix}big`, randomBytes(400 * 1024));
  });
  afterAll(async () => {
    await fetch(`${shared()}/v1/kv/${prefix}?recurse`, { method: 'DELETE' });
    await rm(dir, { recursive: true, force: true });
  });

  const config = (address: string, kind: string, extra: Record<string, unknown> = {}, repo = join(dir, 'repo')) =>
    testConfig({
      sources: [{ name: 'c', type: 'consul', endpoints: [address], prefix, region: 'us-east-1', ...extra }],
      repositories: [{ name: 'dr', type: 'fs', path: repo }],
      jobs: [{ name: 'j', source: 'c', kind, schedule: '0 * * * *', repository: 'dr' }],
    });
  const artifactOf = async (m: Manifest, repo = join(dir, 'repo')): Promise<string> => join(repo, m.repository.key);

  it('stores a snapshot that consul snapshot inspect and restore accept as is', async () => {
    const manifest = await runBackup({ config: config(shared(), 'consul-snapshot'), job: 'j', logger: quietLogger });
    expect(manifest).toMatchObject({ kind: 'consul-snapshot', compression: 'none', source: { type: 'consul' } });
    expect(manifest.repository.key).toMatch(/\.snap$/);
    expect(manifest.raftIndex).toBeGreaterThan(0);
    expect(manifest.details['consulVersion']).toBe('1.20.1');
    expect(manifest.details['snapshotIndex']).toBeGreaterThan(0);
    const file = await artifactOf(manifest);

    const target = await startConsul();
    try {
      expect(await target.ctl('snapshot', 'inspect', file)).toMatch(/KVS/);
      await target.ctl('snapshot', 'restore', file);
      const restored = await consulPairs(target.address, prefix);
      const original = await consulPairs(shared(), prefix);
      expect([...restored.keys()].sort()).toEqual([...original.keys()].sort());
      for (const [key, pair] of original) expect(restored.get(key)?.value.equals(pair.value), key).toBe(true);
    } finally {
      await target.stop();
    }
  });

  it('exports the scope as consul kv export JSON that consul kv import takes, byte-exact', async () => {
    const manifest = await runBackup({ config: config(shared(), 'consul-export', {}, join(dir, 'repo')), job: 'j', logger: quietLogger });
    const file = join(dir, 'export.json');
    const { gunzipSync } = await import('node:zlib');
    await writeFile(file, gunzipSync(await readFile(await artifactOf(manifest))));
    const entries = JSON.parse(await readFile(file, 'utf8')) as { key: string; flags: number; value: string }[];
    expect(entries.map((e) => e.key)).toEqual([...entries.map((e) => e.key)].sort());
    expect(entries.find((e) => e.key === `${prefix}bin`)).toEqual({ key: `${prefix}bin`, flags: 42, value: Buffer.from([0x00, 0xff, 0x80, 0x01]).toString('base64') });
    expect(manifest.records).toBe(5);
    expect(manifest.raftIndex).toBeGreaterThan(0);

    const target = await startConsul();
    try {
      await target.ctl('kv', 'import', `@${file}`);
      const imported = await consulPairs(target.address, prefix);
      const original = await consulPairs(shared(), prefix);
      expect(imported.size).toBe(original.size);
      for (const [key, pair] of original) {
        expect(imported.get(key)?.value.equals(pair.value), key).toBe(true);
        expect(imported.get(key)?.flags, key).toBe(pair.flags);
      }
    } finally {
      await target.stop();
    }
  });

  it('reads from any server with stale, and finds the agent through CONSUL_HTTP_ADDR', async () => {
    const before = process.env['CONSUL_HTTP_ADDR'];
    process.env['CONSUL_HTTP_ADDR'] = shared();
    try {
      const cfg = testConfig({
        sources: [{ name: 'c', type: 'consul', prefix, stale: true }],
        repositories: [{ name: 'dr', type: 'fs', path: join(dir, 'stale') }],
        jobs: [
          { name: 'snap', source: 'c', kind: 'consul-snapshot', schedule: '0 * * * *', repository: 'dr' },
          { name: 'export', source: 'c', kind: 'consul-export', schedule: '0 * * * *', repository: 'dr' },
        ],
      });
      const snap = await runBackup({ config: cfg, job: 'snap', logger: quietLogger });
      expect(snap.source.endpoints).toEqual([shared()]);
      expect((await runBackup({ config: cfg, job: 'export', logger: quietLogger })).records).toBe(5);
    } finally {
      if (before === undefined) delete process.env['CONSUL_HTTP_ADDR'];
      else process.env['CONSUL_HTTP_ADDR'] = before;
    }
  });

  it('exports an empty scope as an empty array', async () => {
    const cfg = testConfig({
      sources: [{ name: 'c', type: 'consul', endpoints: [shared()], prefix: `${uniqueName('none')}/` }],
      repositories: [{ name: 'dr', type: 'fs', path: join(dir, 'empty') }],
      jobs: [{ name: 'j', source: 'c', kind: 'consul-export', compression: 'none', schedule: '0 * * * *', repository: 'dr' }],
    });
    const manifest = await runBackup({ config: cfg, job: 'j', logger: quietLogger });
    expect(manifest.records).toBe(0);
    expect(JSON.parse(await readFile(join(dir, 'empty', manifest.repository.key), 'utf8'))).toEqual([]);
  });

  it('reads from the configured datacenter, and names a datacenter Consul has no path to in one line', async () => {
    for (const kind of ['consul-snapshot', 'consul-export']) {
      const right = await runBackup({ config: config(shared(), kind, { datacenter: 'dc1' }, join(dir, 'dc')), job: 'j', logger: quietLogger });
      expect(right.kind).toBe(kind);
      const wrong = await failureOf(runBackup({ config: config(shared(), kind, { datacenter: 'dc-nowhere' }, join(dir, 'dc-wrong')), job: 'j', logger: quietLogger }));
      expect(wrong.message, kind).toMatch(/^consul http:\/\/127\.0\.0\.1:\d+: cannot .*: No path to datacenter "dc-nowhere" \(Consul does not know it or cannot reach it\); fix the source datacenter/);
      expect(wrong.message).not.toContain('\n');
    }
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(join(dir, 'dc-wrong', 'manifests')).catch(() => [])).toEqual([]);
  });

  it('takes the TLS setup from CONSUL_HTTP_ADDR, CONSUL_HTTP_SSL, CONSUL_CACERT, CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY', async () => {
    const secured = await startConsul({ tls: true });
    try {
      const tls = secured.tls;
      if (!tls) throw new Error('no TLS files');
      await secured.ctl('kv', 'put', `${prefix}tls-env`, 'yes');
      const repo = join(dir, 'tls-env');
      const path = join(dir, 'tls-env.yaml');
      // No endpoint and no tls in the config: everything comes from the consul CLI's environment variables.
      await writeFile(
        path,
        `sources: [{name: c, type: consul, prefix: "${prefix}"}]\n` +
          `repositories: [{name: dr, type: fs, path: "${repo}"}]\n` +
          `jobs: [{name: export, source: c, kind: consul-export, schedule: "0 * * * *", repository: dr},\n` +
          `       {name: snap, source: c, kind: consul-snapshot, schedule: "0 * * * *", repository: dr}]\n`,
      );
      const hostPort = secured.address.replace(/^https:\/\//, '');
      const env = { CONSUL_HTTP_ADDR: hostPort, CONSUL_HTTP_SSL: 'true', CONSUL_CACERT: tls.ca, CONSUL_CLIENT_CERT: tls.clientCert, CONSUL_CLIENT_KEY: tls.clientKey };
      for (const job of ['export', 'snap']) {
        const result = await kvdr(['--config', path, '--log-level', 'silent', '--json', 'backup', job], env);
        expect(result.code, result.stderr).toBe(0);
        const manifest = JSON.parse(result.stdout) as Manifest;
        expect(manifest.source.endpoints).toEqual([secured.address]);
        if (job === 'export') expect(manifest.records).toBe(1);
      }
      // Without the client certificate the same address is refused: the variables were what made it work.
      const { CONSUL_CLIENT_CERT: _cert, CONSUL_CLIENT_KEY: _key, ...withoutClientCert } = env;
      const refused = await kvdr(['--config', path, '--log-level', 'silent', 'backup', 'export'], withoutClientCert);
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      await secured.stop();
    }
  });

  it('reaches a Consul that serves HTTPS only and requires client certificates', async () => {
    const secured = await startConsul({ tls: true });
    try {
      const tls = secured.tls;
      if (!tls) throw new Error('no TLS files');
      await secured.ctl('kv', 'put', `${prefix}tls`, 'yes');
      const source = { tls: { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey } };
      const exported = await runBackup({ config: config(secured.address, 'consul-export', source, join(dir, 'tls')), job: 'j', logger: quietLogger });
      expect(exported.records).toBe(1);
      const snap = await runBackup({ config: config(secured.address, 'consul-snapshot', source, join(dir, 'tls')), job: 'j', logger: quietLogger });
      expect(snap.details['consulVersion']).toBe('1.20.1');
    } finally {
      await secured.stop();
    }
  });

  describe('with ACLs enabled and default deny', () => {
    let secured: ConsulInstance;
    beforeAll(async () => {
      secured = await startConsul({ acl: true });
      await consulPut(secured.address, `${prefix}a`, '1', secured.token);
      await consulPut(secured.address, 'other/b', '2', secured.token);
    });
    afterAll(async () => {
      await secured.stop();
    });

    it('exports with a token that may only read the scope, and snapshots with a management token', async () => {
      const reader = await secured.tokenWith(`key_prefix "${prefix}" { policy = "read" }`);
      const log = capturingLogger();
      const exported = await runBackup({ config: config(secured.address, 'consul-export', { token: reader }, join(dir, 'acl')), job: 'j', logger: log.logger });
      expect(exported.records).toBe(1);
      // Without agent:read the Consul version cannot be read: the manifest says it is unknown, and why,
      // and one warning names the permission.
      expect(exported.details['consulVersion']).toBeUndefined();
      expect(exported.details['consulVersionUnknown']).toMatch(/^the token lacks agent:read \(Permission denied: .*agent:read/);
      const warnings = log.lines().filter((l) => l.level === 40);
      expect(warnings.map((w) => w.msg)).toEqual([expect.stringMatching(/the Consul version is unknown .*grant the token agent:read \(agent_prefix "" \{ policy = "read" \}\) to record it$/)]);

      // Granting agent:read is enough to record it.
      const readerWithAgent = await secured.tokenWith(`key_prefix "${prefix}" { policy = "read" }\nagent_prefix "" { policy = "read" }`);
      const versioned = await runBackup({ config: config(secured.address, 'consul-export', { token: readerWithAgent }, join(dir, 'acl')), job: 'j', logger: quietLogger });
      expect(versioned.details['consulVersion']).toBe('1.20.1');
      expect(versioned.details['consulVersionUnknown']).toBeUndefined();

      const snap = await runBackup({ config: config(secured.address, 'consul-snapshot', { token: secured.token }, join(dir, 'acl')), job: 'j', logger: quietLogger });
      expect(snap.bytes.stored).toBeGreaterThan(0);
      expect(snap.details['consulVersion']).toBe('1.20.1');
    });

    it('takes the token from CONSUL_HTTP_TOKEN when the config has none', async () => {
      const before = process.env['CONSUL_HTTP_TOKEN'];
      process.env['CONSUL_HTTP_TOKEN'] = secured.token;
      try {
        const exported = await runBackup({ config: config(secured.address, 'consul-export', {}, join(dir, 'acl-env')), job: 'j', logger: quietLogger });
        expect(exported.records).toBe(1);
      } finally {
        if (before === undefined) delete process.env['CONSUL_HTTP_TOKEN'];
        else process.env['CONSUL_HTTP_TOKEN'] = before;
      }
    });

    it('names the missing permission in one line', async () => {
      const other = await secured.tokenWith('key_prefix "other/" { policy = "read" }');
      const exportErr = await failureOf(runBackup({ config: config(secured.address, 'consul-export', { token: other }, join(dir, 'denied')), job: 'j', logger: quietLogger }));
      expect(exportErr.message).toContain(`the token needs key_prefix "${prefix}" { policy = "read" }`);
      expect(exportErr.message).not.toContain('\n');
      const snapErr = await failureOf(runBackup({ config: config(secured.address, 'consul-snapshot', { token: other }, join(dir, 'denied')), job: 'j', logger: quietLogger }));
      expect(snapErr.message).toMatch(/permission denied .*the token needs a management token/);
      const unknown = await failureOf(runBackup({ config: config(secured.address, 'consul-export', { token: '00000000-0000-0000-0000-000000000000' }, join(dir, 'denied')), job: 'j', logger: quietLogger }));
      expect(unknown.message).toMatch(/ACL token is not known to Consul|permission denied/);
      const { readdir } = await import('node:fs/promises');
      expect(await readdir(join(dir, 'denied', 'manifests')).catch(() => [])).toEqual([]);
    });
  });
});

import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/loader.js';
import { PROJECT_ROOT } from '../harness/stack.js';

const run = promisify(execFile);

interface ComposeService {
  image?: string;
  build?: { context: string };
  command?: string[];
  entrypoint?: string[];
  depends_on?: Record<string, { condition?: string }>;
  environment?: Record<string, string>;
  healthcheck?: { test?: string[] };
  ports?: string[];
  volumes?: string[];
}

// No Docker engine runs here; docker-compose still parses, validates and resolves the file.
describe('docker-compose.yml', () => {
  let services: Record<string, ComposeService> = {};
  const service = (name: string): ComposeService => {
    const found = services[name];
    if (!found) throw new Error(`docker-compose.yml has no service ${name}`);
    return found;
  };

  beforeAll(async () => {
    const { stdout } = await run('docker-compose', ['-f', `${PROJECT_ROOT}docker-compose.yml`, 'config'], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, MINIO_ROOT_USER: 'u', MINIO_ROOT_PASSWORD: 'p' },
    });
    services = (parse(stdout) as { services: Record<string, ComposeService> }).services;
  });

  it('is valid and wires etcd, Consul, MinIO and kvdr built from the Dockerfile', () => {
    expect(Object.keys(services).sort()).toEqual(['consul', 'etcd', 'kvdr', 'minio', 'minio-init']);
    const kvdr = service('kvdr');
    expect(kvdr.build?.context).toBe(PROJECT_ROOT.replace(/\/$/, ''));
    expect(kvdr.environment).toMatchObject({
      KVDR_CONFIG: '/app/config/demo.yaml',
      KVDR_ETCD_ENDPOINT: 'http://etcd:2379',
      KVDR_CONSUL_ADDR: 'http://consul:8500',
      KVDR_S3_ENDPOINT: 'http://minio:9000',
      AWS_ACCESS_KEY_ID: 'u',
      AWS_SECRET_ACCESS_KEY: 'p',
    });
  });

  it('starts kvdr only once every service is healthy and the bucket exists', () => {
    expect(service('kvdr').depends_on).toEqual({
      etcd: { condition: 'service_healthy' },
      consul: { condition: 'service_healthy' },
      minio: { condition: 'service_healthy' },
      'minio-init': { condition: 'service_completed_successfully' },
    });
    // service_healthy means something only with a healthcheck.
    for (const name of ['etcd', 'consul', 'minio', 'kvdr']) expect(service(name).healthcheck?.test?.[0], name).toBe('CMD');
  });

  it('creates the demo bucket with a one-shot mc, with object lock, against the compose MinIO', () => {
    const init = service('minio-init');
    expect(init.image).toBe(service('minio').image); // the MinIO image ships mc
    expect(init.entrypoint).toEqual(['mc', 'mb', '--ignore-existing', '--with-lock', 'demo/kvdr-demo']);
    expect(init.environment?.['MC_HOST_demo']).toBe('http://u:p@minio:9000');
    expect(init.depends_on).toEqual({ minio: { condition: 'service_healthy' } });
  });

  it('has etcd listen on every interface and advertise its service hostname', () => {
    const command = service('etcd').command ?? [];
    expect(command).toContain('--listen-client-urls=http://0.0.0.0:2379');
    expect(command).toContain('--advertise-client-urls=http://etcd:2379');
    expect(service('consul').command).toContain('-client=0.0.0.0');
  });

  it('gives config/demo.yaml, read with its environment, a listener the published port reaches', async () => {
    const kvdr = service('kvdr');
    expect(kvdr.environment?.['KVDR_LISTEN_HOST']).toBe('0.0.0.0');
    const text = await readFile(`${PROJECT_ROOT}config/demo.yaml`, 'utf8');
    const config = parseConfig(text, 'demo.yaml', kvdr.environment ?? {});
    expect(config.service.listen).toBe('0.0.0.0:9464');
    expect(kvdr.ports).toContain('127.0.0.1:9464:9464/tcp');
    expect(kvdr.healthcheck?.test?.join(' ')).toContain('http://127.0.0.1:9464/healthz');
    expect(config.sources.flatMap((s) => s.endpoints)).toEqual(['http://etcd:2379', 'http://consul:8500']);
    const s3 = config.repositories.find((r) => r.type === 's3');
    expect(s3).toMatchObject({ bucket: 'kvdr-demo', endpoint: 'http://minio:9000' });
    // The local repository lives on the kvdr-data volume.
    expect(kvdr.volumes).toContain('kvdr-data:/var/lib/kvdr:rw');
    expect(config.repositories.find((r) => r.type === 'fs')).toMatchObject({ path: '/var/lib/kvdr/backups' });
    // Outside compose (npm run demo) the same file still listens on loopback only.
    expect(parseConfig(text, 'demo.yaml', {}).service.listen).toBe('127.0.0.1:9464');
  });
});

describe('Dockerfile', () => {
  it('creates the state directory owned by the runtime user before dropping root', async () => {
    const text = await readFile(`${PROJECT_ROOT}Dockerfile`, 'utf8');
    const finalStage = text.slice(text.lastIndexOf('\nFROM '));
    const lines = finalStage.split('\n');
    const user = lines.findIndex((l) => /^USER\s+node\s*$/.test(l));
    const chown = lines.findIndex((l) => /^RUN\b.*mkdir -p [^&]*\/var\/lib\/kvdr\b.*chown[^&]* node:node [^&]*\/var\/lib\/kvdr\b/.test(l));
    expect(user, 'USER node in the final stage').toBeGreaterThan(0);
    expect(chown, 'RUN mkdir -p /var/lib/kvdr && chown node:node /var/lib/kvdr in the final stage').toBeGreaterThan(0);
    expect(chown).toBeLessThan(user);
  });

  it('keeps dependencies, build output and local config out of the build context', async () => {
    const ignored = (await readFile(`${PROJECT_ROOT}.dockerignore`, 'utf8')).split('\n').map((l) => l.trim());
    expect(ignored).toEqual(expect.arrayContaining(['node_modules', 'dist', '.git', 'config/kvdr.yaml']));
    expect(ignored).not.toContain('src');
    expect(ignored).not.toContain('config');
  });
});

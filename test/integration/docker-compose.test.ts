import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PROJECT_ROOT } from '../harness/stack.js';

const run = promisify(execFile);

// No Docker engine runs here; docker-compose still parses, validates and resolves the file.
describe('docker-compose.yml', () => {
  it('is valid and wires etcd, Consul, MinIO and kvdr built from the Dockerfile', async () => {
    const { stdout } = await run('docker-compose', ['-f', `${PROJECT_ROOT}docker-compose.yml`, 'config'], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, MINIO_ROOT_USER: 'u', MINIO_ROOT_PASSWORD: 'p' },
    });
    const resolved = parse(stdout) as {
      services: Record<string, { build?: { context: string }; depends_on?: Record<string, unknown>; environment?: Record<string, string> }>;
    };
    expect(Object.keys(resolved.services).sort()).toEqual(['consul', 'etcd', 'kvdr', 'minio']);
    const kvdr = resolved.services['kvdr'];
    expect(kvdr?.build?.context).toBe(PROJECT_ROOT.replace(/\/$/, ''));
    expect(Object.keys(kvdr?.depends_on ?? {}).sort()).toEqual(['consul', 'etcd', 'minio']);
    expect(kvdr?.environment?.['KVDR_ETCD_ENDPOINT']).toBe('http://etcd:2379');
    expect(kvdr?.environment?.['AWS_ACCESS_KEY_ID']).toBe('u');
  });
});

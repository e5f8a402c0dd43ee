import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../src/util/version.js';
import { runCli, type CliResult } from '../harness/cli.js';
import { createTestBucket, type TestBucket } from '../harness/minio.js';
import { requireEnv } from '../harness/namespace.js';
import { PROJECT_ROOT } from '../harness/stack.js';

const run = promisify(execFile);

// What Node or a library prints when it objects to the runtime: "(node:123) Warning: …", a
// DeprecationWarning, or the AWS SDK's NodeVersionSupportWarning (its releases from January 2027 need
// Node >= 22).
const RUNTIME_WARNING = /warning|NodeVersionSupport/i;

// Nothing in the children's environment may hide a warning: not the SDK's switch that kvdr used to set,
// nor Node's own.
const UNMUTED: NodeJS.ProcessEnv = {
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: undefined,
  NODE_NO_WARNINGS: undefined,
  NODE_OPTIONS: undefined,
};

const major = (version: string): number => Number(/^v(\d+)\./.exec(version.trim())?.[1]);

describe('the Node runtime kvdr runs on', () => {
  it('is Node >= 22: the node the CLIs are spawned with (the one tests run on)', async () => {
    // test/harness/cli.ts spawns the CLIs with process.execPath; ask that binary itself.
    const { stdout } = await run(process.execPath, ['-p', 'process.version'], { env: { ...process.env, ...UNMUTED } });
    const fix = 'run the tests with `npm test -- <vitest arguments>`, which brings Node 24 when the machine has an older one';
    expect(major(stdout), `the CLIs run on Node ${stdout.trim()}; ${fix}`).toBeGreaterThanOrEqual(22);
  });

  it('agrees across package.json, the pinned Node of the scripts and the Docker image', async () => {
    const pkg = JSON.parse(await readFile(`${PROJECT_ROOT}package.json`, 'utf8')) as {
      engines: { node: string };
      devDependencies: Record<string, string>;
    };
    expect(pkg.engines.node).toBe('>=22');
    const versions = await readFile(`${PROJECT_ROOT}scripts/versions.sh`, 'utf8');
    const pinned = /^KVDR_NODE_VERSION="(\d+)\.\d+\.\d+"$/m.exec(versions)?.[1];
    expect(/^KVDR_NODE_MIN_MAJOR=(\d+)$/m.exec(versions)?.[1]).toBe('22');
    expect(pinned).toBe('24');
    expect(pkg.devDependencies['@types/node']).toMatch(new RegExp(`^\\^${pinned}\\.`));
    const dockerfile = await readFile(`${PROJECT_ROOT}Dockerfile`, 'utf8');
    const images = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(image).toMatch(new RegExp(`^node:${pinned}-`));
  });
});

describe('kvdr commands print no runtime warning', () => {
  let dir: string;
  let bucket: TestBucket;
  let s3Config: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-runtime-'));
    bucket = await createTestBucket('runtime');
    // An S3 repository: `backups list` then builds an S3 client, which is where the SDK checks the Node version.
    s3Config = join(dir, 's3.yaml');
    await writeFile(
      s3Config,
      `repositories:\n  - name: dr\n    type: s3\n    bucket: ${bucket.name}\n    region: ${requireEnv('KVDR_S3_REGION')}\n` +
        `    endpoint: ${requireEnv('KVDR_S3_ENDPOINT')}\n    forcePathStyle: true\n`,
    );
  });
  afterAll(async () => {
    await bucket.remove();
    await rm(dir, { recursive: true, force: true });
  });

  const s3Env = (): NodeJS.ProcessEnv => ({
    ...UNMUTED,
    AWS_ACCESS_KEY_ID: requireEnv('KVDR_S3_ACCESS_KEY'),
    AWS_SECRET_ACCESS_KEY: requireEnv('KVDR_S3_SECRET_KEY'),
  });
  const expectNoWarning = (result: CliResult): void => {
    expect(result.stderr, 'stderr').not.toMatch(RUNTIME_WARNING);
  };

  it('kvdr --version', async () => {
    const result = await runCli('kvdr', ['--version'], UNMUTED);
    expectNoWarning(result);
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toBe(VERSION);
  });

  it('kvdr backups list against an S3 repository', async () => {
    const result = await runCli('kvdr', ['--config', s3Config, 'backups', 'list'], s3Env());
    expectNoWarning(result);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('no backups yet in dr');
  });

  it('kvdr backups list failing on a missing bucket: still one line', async () => {
    const missing = join(dir, 'missing.yaml');
    await writeFile(missing, (await readFile(s3Config, 'utf8')).replace(bucket.name, `${bucket.name}-missing`));
    const result = await runCli('kvdr', ['--config', missing, 'backups', 'list'], s3Env());
    expectNoWarning(result);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('kvdr restore --help', async () => {
    const result = await runCli('kvdr', ['restore', '--help'], UNMUTED);
    expectNoWarning(result);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--kvdb_dump_file');
  });

  it('px-kvdb-restore --help', async () => {
    const result = await runCli('px-kvdb-restore', ['--help'], UNMUTED);
    expectNoWarning(result);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('run');
  });
});

import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT, STACK_VARIABLES, stackDown, stackUp } from './stack.js';

const run = promisify(execFile);

/**
 * Starts a private stack of real etcd, Consul and MinIO for this test run (or reuses one named by
 * KVDR_STACK_DIR + the KVDR_* endpoints already in the environment) and builds the CLI that tests spawn.
 */
export default async function setup(): Promise<() => Promise<void>> {
  const build = run('npx', ['--no-install', 'tsc', '-p', 'tsconfig.build.json'], { cwd: PROJECT_ROOT, timeout: 300_000 });

  let teardown = async (): Promise<void> => {};
  const external = STACK_VARIABLES.every((name) => process.env[name]);
  if (!external) {
    const dir = await mkdtemp(join(tmpdir(), 'kvdr-stack-'));
    const env = await stackUp(dir, process.pid);
    Object.assign(process.env, env);
    teardown = () => stackDown(dir);
  }
  await build;
  return teardown;
}

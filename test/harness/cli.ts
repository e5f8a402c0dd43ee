import { spawn } from 'node:child_process';
import { PROJECT_ROOT } from './stack.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a built CLI (dist/, built by the global setup) as a user would, with a bounded time. */
export function runCli(bin: 'kvdr' | 'px-kvdb-restore', args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`${PROJECT_ROOT}dist/cli/${bin}.js`, ...args], {
      env: { ...process.env, KVDR_CONFIG: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export const kvdr = (args: readonly string[], env?: NodeJS.ProcessEnv): Promise<CliResult> => runCli('kvdr', args, env);

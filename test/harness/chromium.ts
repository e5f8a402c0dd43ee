import { execFile } from 'node:child_process';
import { access, constants, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';

/**
 * Runs Debian's headless Chromium once (a fresh profile under `dir`, no network chatter) with `extra`
 * (e.g. `--dump-dom <url>`, `--screenshot=<png> <url>`) and returns what it printed.
 */
export async function chromium(dir: string, profile: string, extra: string[]): Promise<string> {
  try {
    await access(CHROMIUM, constants.X_OK);
  } catch {
    throw new Error(`${CHROMIUM} is missing: run \`scripts/install-services.sh tools\` to install Chromium`);
  }
  const userDataDir = await mkdtemp(join(dir, `${profile}-`));
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking'];
  flags.push('--disable-component-update', '--disable-sync', `--user-data-dir=${userDataDir}`, '--virtual-time-budget=5000');
  const { stdout } = await run(CHROMIUM, [...flags, ...extra], { timeout: 60_000, maxBuffer: 32 * 1024 * 1024 });
  return stdout;
}

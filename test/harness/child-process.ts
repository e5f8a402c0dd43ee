import type { ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';

/** Stops a test server: SIGTERM, up to 10 s to exit, then SIGKILL; then removes its directory. */
export async function stopServer(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    child.kill('SIGKILL');
  }
  await rm(dir, { recursive: true, force: true });
}

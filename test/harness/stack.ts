import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SERVICES = `${PROJECT_ROOT}scripts/services.sh`;

export type ServiceName = 'etcd' | 'consul' | 'minio';

/** The variables scripts/services.sh writes for a running stack. */
export const STACK_VARIABLES = [
  'KVDR_STACK_DIR',
  'KVDR_BIN_DIR',
  'KVDR_ETCD_ENDPOINT',
  'KVDR_CONSUL_ADDR',
  'KVDR_S3_ENDPOINT',
  'KVDR_S3_REGION',
  'KVDR_S3_ACCESS_KEY',
  'KVDR_S3_SECRET_KEY',
  'KVDR_S3_KMS_KEY_ID',
  'KVDR_ETCD35_BIN',
] as const;

export async function stackUp(dir: string, watchPid: number): Promise<Record<string, string>> {
  await run('bash', [SERVICES, 'up', '--dir', dir, '--watch-pid', String(watchPid)], { timeout: 180_000 });
  return parseEnv(await readFile(`${dir}/env`, 'utf8'));
}

export async function stackDown(dir: string): Promise<void> {
  await run('bash', [SERVICES, 'down', '--dir', dir], { timeout: 60_000 });
}

/** Stops or restarts one service of the running stack (same port, same data): for fault tests. */
export async function serviceControl(action: 'stop' | 'start', service: ServiceName): Promise<void> {
  const dir = process.env['KVDR_STACK_DIR'];
  if (!dir) throw new Error('KVDR_STACK_DIR is not set: integration tests run under the global setup');
  await run('bash', [SERVICES, action, service, '--dir', dir], { timeout: 120_000 });
}

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

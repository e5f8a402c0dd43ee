import { randomBytes } from 'node:crypto';

/** A name no other test (or earlier run) uses: the root of one test's keys, bucket or directory. */
export function uniqueName(label: string): string {
  const safe = label.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 30);
  return `kvdr-t-${safe}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: integration tests run under the vitest global setup`);
  return value;
}

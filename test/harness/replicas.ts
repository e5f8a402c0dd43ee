import { waitFor } from './wait.js';

/** What a replica's /readyz says it is ('starting', 'single', 'leader', 'follower'), or 'down'. */
export function replicaRole(port: number): Promise<string> {
  return fetch(`http://127.0.0.1:${port}/readyz`).then(async (r) => ((await r.json()) as { role: string }).role, () => 'down');
}

/** Waits until exactly one of the replicas leads and the others follow; their roles, in the order given. */
export async function oneLeader(ports: readonly number[]): Promise<string[]> {
  let roles: string[] = [];
  const want = ['leader', ...ports.slice(1).map(() => 'follower')].sort().join();
  await waitFor(async () => {
    roles = await Promise.all(ports.map(replicaRole));
    return [...roles].sort().join() === want;
  }, 'one leader and the rest followers');
  return roles;
}

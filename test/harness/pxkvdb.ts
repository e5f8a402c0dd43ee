import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { requireEnv } from './namespace.js';
import { PROJECT_ROOT } from './stack.js';

/**
 * test/tools/pxkvdb: Portworx's own KVDB library (github.com/portworx/kvdb, pinned in scripts/versions.sh)
 * behind a CLI, so tests make PX dumps exactly as a Portworx node does (its Serialize()) and read a
 * restored cluster back exactly as Portworx sees it (its Enumerate()).
 */

const run = promisify(execFile);

export type PxBackend = 'etcd' | 'consul';

/** One KVPair as the library marshals it (Serialize and Enumerate print the same shape). */
export interface PxPair {
  Key: string;
  /** base64; null for an empty value. */
  Value: string | null;
  Action: number;
  TTL: number;
  KVDBIndex: number;
  CreatedIndex: number;
  ModifiedIndex: number;
  Lock: unknown;
}

/** One write through the library: Put (default), Create or Delete; ttl (seconds) gives the key a lease/session. */
export interface PxOp {
  key: string;
  value?: Buffer | string;
  op?: 'put' | 'create' | 'delete';
  ttl?: number;
}

let binary: Promise<string> | undefined;

/**
 * The tool's path. `install-services.sh pxkvdb` is idempotent (a hash check and a symlink when the binary
 * for these sources is built) and builds it otherwise, so a test never runs a binary of older sources.
 */
export function pxkvdbBinary(): Promise<string> {
  binary ??= run('bash', [`${PROJECT_ROOT}scripts/install-services.sh`, 'pxkvdb'], { timeout: 600_000 }).then(
    ({ stdout }) => stdout.trim().split('\n').at(-1) ?? '',
    (error: Error & { stderr?: string }) => {
      throw new Error(`building test/tools/pxkvdb failed: ${error.stderr?.trim().split('\n').at(-1) ?? error.message}`);
    },
  );
  return binary;
}

/** The Portworx endpoint form of the test stack's etcd or Consul: what kvdr --target and pxkvdb --kvdb take. */
export function pxEndpoint(backend: PxBackend): string {
  return backend === 'etcd' ? `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}` : `consul:${requireEnv('KVDR_CONSUL_ADDR')}`;
}

/** The library's domain for a cluster, as Portworx names it. */
export const pxDomain = (clusterId: string): string => `pwx/${clusterId}/`;

async function pxkvdb(args: readonly string[], input?: string): Promise<string> {
  const bin = await pxkvdbBinary();
  return new Promise((resolve, reject) => {
    const child = execFile(bin, args, { timeout: 60_000, maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`pxkvdb ${args.join(' ')}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
    child.stdin?.end(input ?? '');
  });
}

/** Writes through the library's Put/Create/Delete under the cluster's domain; returns the library's KVPairs. */
export async function pxPut(backend: PxBackend, clusterId: string, ops: readonly PxOp[]): Promise<PxPair[]> {
  const input = ops.map((o) => ({
    Key: o.key,
    Value: Buffer.from(o.value ?? '').toString('base64'),
    Op: o.op ?? 'put',
    TTL: o.ttl ?? 0,
  }));
  return JSON.parse(await pxkvdb(['put', '--kvdb', pxEndpoint(backend), '--domain', pxDomain(clusterId)], JSON.stringify(input))) as PxPair[];
}

/** The library's Serialize() of the cluster, written to `out` as a Portworx node writes its dump; returns its pairs. */
export async function pxDump(backend: PxBackend, clusterId: string, out: string): Promise<PxPair[]> {
  await pxkvdb(['dump', '--kvdb', pxEndpoint(backend), '--domain', pxDomain(clusterId), '--out', out]);
  return (JSON.parse(await readFile(out, 'utf8')) as PxPair[] | null) ?? [];
}

/** The library's Enumerate(prefix) under the cluster's domain: the cluster as Portworx reads it. */
export async function pxEnumerate(backend: PxBackend, clusterId: string, prefix = ''): Promise<PxPair[]> {
  const out = await pxkvdb(['enumerate', '--kvdb', pxEndpoint(backend), '--domain', pxDomain(clusterId), '--prefix', prefix]);
  return (JSON.parse(out) as PxPair[] | null) ?? [];
}

/** Key → value (hex) of a list of pairs, for byte-exact comparisons that ignore indexes and order. */
export function pxContent(pairs: readonly PxPair[]): Map<string, string> {
  return new Map(pairs.map((p) => [p.Key, Buffer.from(p.Value ?? '', 'base64').toString('hex')]));
}

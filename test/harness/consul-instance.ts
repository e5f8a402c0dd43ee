import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requireEnv } from './namespace.js';
import { stopServer } from './child-process.js';
import { freePorts } from './ports.js';
import { makeTlsFiles, type TlsFiles } from './tls.js';

const run = promisify(execFile);

export interface ConsulInstanceOptions {
  /** ACLs on with default deny; the instance's `token` is the initial management token. */
  acl?: boolean;
  /** Expect this many servers: more than 1 means no leader is ever elected. */
  bootstrapExpect?: number;
  /** Serve the HTTP API over TLS only, requiring a client certificate. */
  tls?: boolean;
  /** Node name, unique within a cluster. @defaultValue solo */
  node?: string;
  /** Serf LAN addresses (`lanAddress` of other instances) to join: several servers form one cluster. */
  join?: string[];
}

export interface ConsulInstance {
  address: string;
  /** The Serf LAN address, for other instances to join. */
  lanAddress: string;
  tls?: TlsFiles;
  /** Management token (ACL instances only). */
  token?: string;
  /** Runs the consul CLI against this agent. */
  ctl(...args: string[]): Promise<string>;
  /** A token limited to these ACL rules (HCL). */
  tokenWith(rules: string): Promise<string>;
  kill(): void;
  /** SIGSTOP / SIGCONT: a server that stops answering without closing its connections. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

/** A private Consul server for tests that need ACLs, an empty cluster, or one to stop. */
export async function startConsul(options: ConsulInstanceOptions = {}): Promise<ConsulInstance> {
  const dir = await mkdtemp(join(tmpdir(), 'kvdr-consul-'));
  const [http, serfLan, serfWan, server] = (await freePorts(4)) as [number, number, number, number];
  const token = options.acl ? randomUUID() : undefined;
  const binary = `${requireEnv('KVDR_BIN_DIR')}/consul`;
  const tls = options.tls ? await makeTlsFiles(dir) : undefined;
  const ports = tls ? `http = -1, https = ${http}` : `http = ${http}, https = -1`;
  const hcl = [
    `ports { ${ports}, grpc = -1, grpc_tls = -1, dns = -1, serf_lan = ${serfLan}, serf_wan = ${serfWan}, server = ${server} }`,
    'disable_update_check = true',
    ...(tls
      ? [`tls { https { ca_file = "${tls.ca}", cert_file = "${tls.serverCert}", key_file = "${tls.serverKey}", verify_incoming = true } }`]
      : []),
    ...(token ? [`acl { enabled = true, default_policy = "deny", tokens { initial_management = "${token}" } }`] : []),
  ];
  const child: ChildProcess = spawn(
    binary,
    ['agent', '-server', `-bootstrap-expect=${options.bootstrapExpect ?? 1}`, '-node', options.node ?? 'solo', '-bind', '127.0.0.1', '-advertise', '127.0.0.1',
      '-client', '127.0.0.1', '-data-dir', join(dir, 'data'), ...(options.join ?? []).flatMap((a) => ['-retry-join', a]),
      ...hcl.flatMap((h) => ['-hcl', h])],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const address = `${tls ? 'https' : 'http'}://127.0.0.1:${http}`;
  const headers: Record<string, string> = token ? { 'X-Consul-Token': token } : {};

  const ready = async (): Promise<boolean> => {
    if (tls) {
      const tlsEnv = { ...process.env, CONSUL_HTTP_ADDR: address, CONSUL_CACERT: tls.ca, CONSUL_CLIENT_CERT: tls.clientCert, CONSUL_CLIENT_KEY: tls.clientKey };
      const leader = await run(binary, ['operator', 'raft', 'list-peers'], { env: tlsEnv, timeout: 5_000 }).then((r) => r.stdout, () => '');
      return /leader/.test(leader);
    }
    if (options.bootstrapExpect && options.bootstrapExpect > 1) return (await fetch(`${address}/v1/agent/self`, { headers })).ok;
    const leader = await (await fetch(`${address}/v1/status/leader`)).text();
    if (!/\d/.test(leader)) return false;
    if (!token) return true;
    return (await fetch(`${address}/v1/acl/token/self`, { headers })).ok;
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`consul exited during start-up: ${log}`);
    if (await ready().catch(() => false)) break;
    if (Date.now() > deadline) throw new Error(`consul not ready after 60s: ${log}`);
    await new Promise((r) => setTimeout(r, 250));
  }

  const env = {
    ...process.env,
    CONSUL_HTTP_ADDR: address,
    CONSUL_HTTP_TOKEN: token ?? '',
    ...(tls ? { CONSUL_CACERT: tls.ca, CONSUL_CLIENT_CERT: tls.clientCert, CONSUL_CLIENT_KEY: tls.clientKey } : {}),
  };
  return {
    address,
    lanAddress: `127.0.0.1:${serfLan}`,
    ...(tls ? { tls } : {}),
    ...(token ? { token } : {}),
    ctl: async (...args) => (await run(binary, args, { env, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 })).stdout,
    tokenWith: async (rules) => {
      const name = `p-${randomUUID().slice(0, 8)}`;
      const policy = await fetch(`${address}/v1/acl/policy`, { method: 'PUT', headers, body: JSON.stringify({ Name: name, Rules: rules }) });
      if (!policy.ok) throw new Error(`policy: ${await policy.text()}`);
      const created = await fetch(`${address}/v1/acl/token`, { method: 'PUT', headers, body: JSON.stringify({ Policies: [{ Name: name }] }) });
      if (!created.ok) throw new Error(`token: ${await created.text()}`);
      return ((await created.json()) as { SecretID: string }).SecretID;
    },
    kill: () => {
      child.kill('SIGKILL');
    },
    pause: () => {
      child.kill('SIGSTOP');
    },
    resume: () => {
      child.kill('SIGCONT');
    },
    stop: () => stopServer(child, dir),
  };
}

/** Waits until the agent reports a leader (`want: true`) or reports none (`want: false`). */
export async function waitForLeader(address: string, want = true, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leader = await fetch(`${address}/v1/status/leader`).then((r) => r.text(), () => '');
    if (/\d/.test(leader) === want) return;
    if (Date.now() > deadline) throw new Error(`consul ${address}: ${want ? 'no leader' : 'still a leader'} after ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Puts raw bytes at a key over HTTP (the consul CLI cannot write arbitrary bytes). */
export async function consulPut(address: string, key: string, value: Buffer | string, token?: string, flags?: number): Promise<void> {
  const url = `${address}/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}${flags !== undefined ? `?flags=${flags}` : ''}`;
  const response = await fetch(url, { method: 'PUT', body: value, headers: token ? { 'X-Consul-Token': token } : {} });
  if (!response.ok) throw new Error(`PUT ${key}: HTTP ${response.status} ${await response.text()}`);
}

/** Every pair under a prefix, values as bytes. */
export async function consulPairs(address: string, prefix: string, token?: string): Promise<Map<string, { value: Buffer; flags: number }>> {
  const response = await fetch(`${address}/v1/kv/${prefix}?recurse`, { headers: token ? { 'X-Consul-Token': token } : {} });
  if (response.status === 404) return new Map();
  const pairs = (await response.json()) as { Key: string; Flags: number; Value: string | null }[];
  return new Map(pairs.map((p) => [p.Key, { value: Buffer.from(p.Value ?? '', 'base64'), flags: p.Flags }]));
}

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stopServer } from './child-process.js';
import { freePorts } from './ports.js';
import { makeTlsFiles, type TlsFiles } from './tls.js';

const run = promisify(execFile);

export interface EtcdInstanceOptions {
  /** Serve clients over TLS and require a client certificate. */
  tls?: boolean;
  /** Enable authentication with this root password. */
  rootPassword?: string;
  /** Start a member from this snapshot file, restored with `etcdctl snapshot restore` (which checks its trailer). */
  restoreFrom?: string;
  /** The etcd binary. @defaultValue `etcd` (Debian's 3.4) */
  binary?: string;
}

export interface EtcdInstance {
  endpoint: string;
  dir: string;
  tls?: TlsFiles;
  /** etcdctl arguments that reach this instance as root. */
  ctlArgs: string[];
  ctl(...args: string[]): Promise<string>;
  /** SIGKILL: for fault tests. */
  kill(): void;
  /** Starts it again after `kill`, on the same port and data: the cluster comes back as it was. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that stops answering without closing its connections. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

/**
 * A private etcd for tests that need a cluster of their own: auth or TLS enabled, or one to kill.
 * The shared stack's etcd serves everything else.
 */
export async function startEtcd(options: EtcdInstanceOptions = {}): Promise<EtcdInstance> {
  const dir = await mkdtemp(join(tmpdir(), 'kvdr-etcd-'));
  const [client, peer] = (await freePorts(2)) as [number, number];
  const scheme = options.tls ? 'https' : 'http';
  const endpoint = `${scheme}://127.0.0.1:${client}`;
  const tls = options.tls ? await makeTlsFiles(dir) : undefined;
  const name = 'solo';
  const dataDir = join(dir, 'data');
  if (options.restoreFrom) {
    await run('etcdctl', ['snapshot', 'restore', options.restoreFrom, '--name', name, '--data-dir', dataDir,
      '--initial-cluster', `${name}=http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`],
      { env: { ...process.env, ETCDCTL_API: '3' } });
  }
  const args = [
    '--name', name,
    '--data-dir', dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `${name}=http://127.0.0.1:${peer}`,
    '--quota-backend-bytes', String(4 * 1024 ** 3),
    ...(tls ? ['--cert-file', tls.serverCert, '--key-file', tls.serverKey, '--client-cert-auth', '--trusted-ca-file', tls.ca] : []),
  ];
  let log = '';
  const launch = (): ChildProcess => {
    const started = spawn(options.binary ?? 'etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    started.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    return started;
  };
  let child = launch();

  const tlsArgs = tls ? ['--cacert', tls.ca, '--cert', tls.clientCert, '--key', tls.clientKey] : [];
  const baseArgs = ['--endpoints', endpoint, ...tlsArgs];
  const ctl = async (...ctlArgs: string[]): Promise<string> =>
    (await run('etcdctl', [...baseArgs, ...ctlArgs], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 })).stdout;

  const healthy = async (): Promise<void> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`etcd exited during start-up: ${log}`);
      try {
        await ctl('endpoint', 'health', '--command-timeout=2s');
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`etcd not healthy after 30s: ${String(err)} ${log}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  await healthy();

  const rootArgs = options.rootPassword ? ['--user', `root:${options.rootPassword}`] : [];
  if (options.rootPassword) {
    await ctl('user', 'add', `root:${options.rootPassword}`);
    await ctl('auth', 'enable');
  }
  const instance: EtcdInstance = {
    endpoint,
    dir,
    ...(tls ? { tls } : {}),
    ctlArgs: [...baseArgs, ...rootArgs],
    ctl: (...a) => ctl(...rootArgs, ...a),
    kill: () => {
      child.kill('SIGKILL');
    },
    restart: async () => {
      if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once('exit', r));
      child = launch();
      await healthy();
    },
    pause: () => {
      child.kill('SIGSTOP');
    },
    resume: () => {
      child.kill('SIGCONT');
    },
    stop: () => stopServer(child, dir),
  };
  return instance;
}

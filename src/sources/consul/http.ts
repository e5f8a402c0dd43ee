import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { KvdrError, oneLine } from '../../util/errors.js';
import { readAll } from '../../util/streams.js';
import type { ConsulAccess } from './connect.js';

export interface ConsulRequest {
  method?: 'GET' | 'PUT' | 'DELETE';
  /** Path under /v1, e.g. `/snapshot`. */
  path: string;
  query?: Record<string, string | boolean | undefined>;
  /** A stream for large bodies (snapshot restores). */
  body?: Buffer | string | Readable;
  /** What the caller was doing, for the error message: "take a snapshot". */
  what: string;
  /** The ACL permission the call needs, named in the error when Consul refuses the token. */
  permission: string;
  /** Statuses besides 2xx that the caller handles itself (e.g. 404 for an empty prefix). */
  accept?: number[];
  signal?: AbortSignal;
}

/**
 * One call to Consul's HTTP API that returns the response as a stream (snapshots and recursive KV
 * reads are large). Non-2xx answers become one-line errors naming the agent, the operation and, for
 * 403, the permission the token lacks.
 */
export async function consulRequest(access: ConsulAccess, req: ConsulRequest): Promise<IncomingMessage> {
  const url = new URL(`${access.address}/v1${req.path}`);
  const query: Record<string, string | boolean | undefined> = { dc: access.datacenter, ...req.query };
  for (const [k, v] of Object.entries(query)) {
    if (v === true) url.searchParams.set(k, '');
    else if (typeof v === 'string') url.searchParams.set(k, v);
  }
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const r = send(url, {
      method: req.method ?? 'GET',
      headers: { ...(access.token ? { 'X-Consul-Token': access.token } : {}) },
      ...(access.agent ? { agent: access.agent } : {}),
      ...(req.signal ? { signal: req.signal } : {}),
      timeout: 30_000,
    });
    r.on('response', resolve);
    r.on('timeout', () => r.destroy(Object.assign(new Error('no answer within 30s'), { code: 'ETIMEDOUT' })));
    r.on('error', (err) => reject(describeConsulFailure(err, access, req)));
    if (req.body instanceof Readable) {
      req.body.on('error', (err) => r.destroy(err));
      req.body.pipe(r);
    } else r.end(req.body);
  });
  const status = response.statusCode ?? 0;
  if ((status >= 200 && status < 300) || req.accept?.includes(status)) {
    // A read that ACLs filtered answers 200/404 with fewer keys: to a backup that is a denial, not data.
    if (response.headers['x-consul-results-filtered-by-acls'] === 'true') {
      response.destroy();
      throw new KvdrError(`consul ${access.address}: cannot ${req.what}: permission denied (ACLs hid some keys from this token); the token needs ${req.permission}`);
    }
    return response;
  }
  const body = (await readAll(response).catch(() => Buffer.alloc(0))).toString('utf8');
  throw describeConsulStatus(status, body, access, req);
}

function describeConsulStatus(status: number, body: string, access: ConsulAccess, req: ConsulRequest): KvdrError {
  const where = `consul ${access.address}: cannot ${req.what}`;
  const said = oneLine(body).slice(0, 300);
  if (status === 403 && /ACL not found/i.test(body)) {
    return new KvdrError(`${where}: the ACL token is not known to Consul; check the source token or CONSUL_HTTP_TOKEN`);
  }
  if (status === 403 || status === 401) {
    return new KvdrError(`${where}: permission denied (${said || `HTTP ${status}`}); the token needs ${req.permission}`);
  }
  if (/No cluster leader/i.test(body)) {
    return new KvdrError(`${where}: Consul has no cluster leader; wait for an election or check the servers (consul operator raft list-peers)`);
  }
  return new KvdrError(`${where}: HTTP ${status}${said ? `: ${said}` : ''}`);
}

/** A network-level failure of a Consul call, as one line. */
export function describeConsulFailure(err: unknown, access: ConsulAccess, req: Pick<ConsulRequest, 'what'>): KvdrError {
  if (err instanceof KvdrError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const reason = code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND'
    ? `cannot reach Consul (${code}); check the address and that the agent is up`
    : oneLine(err);
  return new KvdrError(`consul ${access.address}: cannot ${req.what}: ${reason}`, undefined, { cause: err });
}

/** Consul's raft index for a read, from X-Consul-Index. */
export function consulIndex(response: IncomingMessage): number | undefined {
  const raw = response.headers['x-consul-index'];
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

/** The agent's Consul version (needs agent:read), or undefined when the token may not see it. */
export async function consulVersion(access: ConsulAccess): Promise<string | undefined> {
  try {
    const response = await consulRequest(access, { path: '/agent/self', what: 'read the agent version', permission: 'agent:read' });
    const self = JSON.parse((await readAll(response)).toString('utf8')) as { Config?: { Version?: string } };
    return self.Config?.Version;
  } catch {
    return undefined;
  }
}

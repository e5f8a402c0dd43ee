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
  /** Longest silence from Consul before the call fails (ETIMEDOUT). @defaultValue 30 s */
  timeoutMs?: number;
}

/**
 * One call to Consul's HTTP API that returns the response as a stream (snapshots and recursive KV
 * reads are large). Non-2xx answers become one-line errors naming the agent, the operation and, for
 * 403, the permission the token lacks.
 */
export async function consulRequest(access: ConsulAccess, req: ConsulRequest): Promise<IncomingMessage> {
  const base = new URL(access.address);
  const search = new URLSearchParams();
  const query: Record<string, string | boolean | undefined> = { dc: access.datacenter, ...req.query };
  for (const [k, v] of Object.entries(query)) {
    if (v === true) search.set(k, '');
    else if (typeof v === 'string') search.set(k, v);
  }
  const queryText = search.toString();
  const send = base.protocol === 'https:' ? httpsRequest : httpRequest;
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    // The path goes out as built, never through a URL parser: WHATWG URLs resolve `..` and `%2E%2E`
    // segments, which would move a key such as `pwx/c1/%2E%2E/c2/x` onto another cluster's keys.
    const r = send({
      protocol: base.protocol,
      hostname: base.hostname.replace(/^\[|\]$/g, ''),
      ...(base.port ? { port: base.port } : {}),
      path: `${base.pathname.replace(/\/+$/, '')}/v1${req.path}${queryText ? `?${queryText}` : ''}`,
      method: req.method ?? 'GET',
      headers: { ...(access.token ? { 'X-Consul-Token': access.token } : {}) },
      ...(access.agent ? { agent: access.agent } : {}),
      ...(req.signal ? { signal: req.signal } : {}),
      timeout: req.timeoutMs ?? 30_000,
    });
    r.on('response', resolve);
    r.on('timeout', () => r.destroy(Object.assign(new Error(`no answer within ${(req.timeoutMs ?? 30_000) / 1000}s`), { code: 'ETIMEDOUT' })));
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
  if (/No path to datacenter/i.test(body)) {
    return new KvdrError(`${where}: No path to datacenter "${access.datacenter ?? '?'}" (Consul does not know it or cannot reach it); fix the source datacenter (consul catalog datacenters lists the known ones)`);
  }
  if (/No cluster leader/i.test(body)) {
    const stale = req.query?.['stale'] === true ? ' (this server refused even a stale read: it has had no leader to get state from)' : '';
    return new KvdrError(`${where}: Consul has no cluster leader${stale}; wait for an election or check the servers (consul operator raft list-peers)`);
  }
  if (/nothing new to snapshot/i.test(body)) {
    return new KvdrError(`${where}: the server holds no Raft state to snapshot (${said}); it has never been part of a cluster with a leader, so check the servers (consul operator raft list-peers)`);
  }
  return new KvdrError(`${where}: HTTP ${status}${said ? `: ${said}` : ''}`);
}

/**
 * A network-level failure of a Consul call, as one line. `phase: 'stream'` is for a body that broke
 * off after Consul had started answering (the agent stopped, the connection was cut).
 */
export function describeConsulFailure(err: unknown, access: ConsulAccess, req: Pick<ConsulRequest, 'what'>, phase: 'request' | 'stream' = 'request'): KvdrError {
  if (err instanceof KvdrError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  const network = code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND' || code === 'EPIPE';
  let reason: string;
  if (phase === 'stream' && (network || /aborted|premature close/i.test(oneLine(err)))) {
    reason = `the connection to Consul broke off mid-stream (${code ?? oneLine(err)}); check that the agent is up and run the backup again`;
  } else if (code === 'ETIMEDOUT' && /^no answer within/.test(oneLine(err))) {
    reason = `Consul gave ${oneLine(err)} (ETIMEDOUT); check that the agent is up and not stopped or overloaded`;
  } else if (network) {
    reason = `cannot reach Consul (${code}); check the address and that the agent is up`;
  } else {
    reason = oneLine(err);
  }
  return new KvdrError(`consul ${access.address}: cannot ${req.what}: ${reason}`, undefined, { cause: err });
}

/** Consul's raft index for a read, from X-Consul-Index. */
export function consulIndex(response: IncomingMessage): number | undefined {
  const raw = response.headers['x-consul-index'];
  const value = Number(Array.isArray(raw) ? raw[0] : raw);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

/** The agent's version, or why it is not known. */
export type ConsulVersion = { version: string } | { unknown: string };

/**
 * The agent's Consul version, from `/v1/agent/self` (which needs agent:read). A token without it gets
 * `unknown` with the reason, so the caller can say so instead of silently recording nothing.
 */
export async function consulVersion(access: ConsulAccess): Promise<ConsulVersion> {
  try {
    const response = await consulRequest(access, {
      path: '/agent/self',
      what: 'read the agent version',
      permission: 'agent:read',
      accept: [401, 403],
    });
    if (response.statusCode === 401 || response.statusCode === 403) {
      const said = oneLine((await readAll(response).catch(() => Buffer.alloc(0))).toString('utf8')).slice(0, 200);
      return { unknown: `the token lacks agent:read${said ? ` (${said})` : ''}` };
    }
    const self = JSON.parse((await readAll(response)).toString('utf8')) as { Config?: { Version?: string } };
    const version = self.Config?.Version;
    return version ? { version } : { unknown: '/v1/agent/self did not report a version' };
  } catch (err) {
    return { unknown: oneLine(err) };
  }
}

/** The manifest details and the warning for a Consul version lookup. */
export function consulVersionFacts(access: ConsulAccess, found: ConsulVersion): { details: Record<string, unknown>; warnings: string[] } {
  if ('version' in found) return { details: { consulVersion: found.version }, warnings: [] };
  return {
    details: { consulVersionUnknown: found.unknown },
    warnings: [
      `consul ${access.address}: the Consul version is unknown and the manifest says so (${found.unknown}); ` +
        'grant the token agent:read (agent_prefix "" { policy = "read" }) to record it',
    ],
  };
}

/**
 * What Consul says about the freshness of a stale read: with `?stale`, a server without a known leader
 * still answers, and the backup may then miss the latest writes.
 */
export function staleReadFacts(access: ConsulAccess, response: IncomingMessage): { details: Record<string, unknown>; warnings: string[] } {
  const known = header(response, 'x-consul-knownleader');
  if (known !== 'false') return { details: {}, warnings: [] };
  const contact = Number(header(response, 'x-consul-lastcontact'));
  const lastContactMs = Number.isFinite(contact) ? contact : undefined;
  return {
    details: { knownLeader: false, ...(lastContactMs !== undefined ? { lastContactMs } : {}) },
    warnings: [
      `consul ${access.address}: answered a stale read without a known leader` +
        `${lastContactMs !== undefined ? ` (last contact with a leader ${lastContactMs} ms ago)` : ''}; the backup may miss the latest writes`,
    ],
  };
}

function header(response: IncomingMessage, name: string): string | undefined {
  const raw = response.headers[name];
  return Array.isArray(raw) ? raw[0] : raw;
}

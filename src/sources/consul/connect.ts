import { Agent as HttpsAgent } from 'node:https';
import Consul from 'consul';
import type { SourceConfig } from '../../config/schema.js';
import { readPem } from '../../util/read-pem.js';

export type ConsulConnection = Pick<SourceConfig, 'endpoints' | 'token' | 'tls' | 'datacenter'>;

/** The HTTP address, token and TLS material for a Consul agent, with Consul's own env conventions. */
export interface ConsulAccess {
  /** e.g. http://127.0.0.1:8500 (no trailing slash). */
  address: string;
  token?: string;
  datacenter?: string;
  agent?: HttpsAgent;
}

/**
 * Resolves how to reach Consul, with the consul CLI's environment conventions: the first configured
 * endpoint, else CONSUL_HTTP_ADDR (`host:port` or a URL; CONSUL_HTTP_SSL=true makes it https, as the
 * CLI does); the token from config, else CONSUL_HTTP_TOKEN; TLS files from config, else CONSUL_CACERT /
 * CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY; CONSUL_TLS_SERVER_NAME and CONSUL_HTTP_SSL_VERIFY=false as
 * the CLI reads them.
 */
export function consulAccess(connection: Partial<ConsulConnection>, env: NodeJS.ProcessEnv = process.env): ConsulAccess {
  const configured = connection.endpoints?.[0];
  let address = configured ?? env['CONSUL_HTTP_ADDR'] ?? 'http://127.0.0.1:8500';
  const ssl = envBool(env['CONSUL_HTTP_SSL']);
  if (!/^https?:\/\//.test(address)) address = `${ssl ? 'https' : 'http'}://${address}`;
  // The CLI never falls back to http when CONSUL_HTTP_SSL asks for TLS; a configured endpoint says its own scheme.
  else if (configured === undefined && ssl && address.startsWith('http://')) address = `https://${address.slice('http://'.length)}`;
  address = address.replace(/\/+$/, '');
  const token = connection.token ?? env['CONSUL_HTTP_TOKEN'];
  const tls = connection.tls ?? {
    ca: env['CONSUL_CACERT'],
    cert: env['CONSUL_CLIENT_CERT'],
    key: env['CONSUL_CLIENT_KEY'],
  };
  const verify = envBool(env['CONSUL_HTTP_SSL_VERIFY']) !== false;
  const serverName = env['CONSUL_TLS_SERVER_NAME'] || undefined;
  const agent =
    address.startsWith('https://') && (tls.ca || tls.cert || !verify || serverName)
      ? new HttpsAgent({
          ca: readPem(tls.ca, 'tls.ca'),
          cert: readPem(tls.cert, 'tls.cert'),
          key: readPem(tls.key, 'tls.key'),
          keepAlive: true,
          ...(verify ? {} : { rejectUnauthorized: false }),
          ...(serverName ? { servername: serverName } : {}),
        })
      : undefined;
  return {
    address,
    ...(token ? { token } : {}),
    ...(connection.datacenter ? { datacenter: connection.datacenter } : {}),
    ...(agent ? { agent } : {}),
  };
}

/** Go's strconv.ParseBool, which the consul CLI uses for its boolean variables; undefined if unset or unparsable. */
function envBool(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

/** The `consul` library client for KV, sessions and transactions. */
export function connectConsul(access: ConsulAccess): Consul {
  const url = new URL(access.address);
  return new Consul({
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    secure: url.protocol === 'https:',
    defaults: { ...(access.token ? { token: access.token } : {}), ...(access.datacenter ? { dc: access.datacenter } : {}) },
    ...(access.agent ? { agent: access.agent } : {}),
  });
}

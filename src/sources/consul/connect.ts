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
 * Resolves how to reach Consul: the first configured endpoint, else CONSUL_HTTP_ADDR; the token from
 * config, else CONSUL_HTTP_TOKEN; TLS from config, else CONSUL_CACERT / CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY.
 */
export function consulAccess(connection: Partial<ConsulConnection>, env: NodeJS.ProcessEnv = process.env): ConsulAccess {
  let address = connection.endpoints?.[0] ?? env['CONSUL_HTTP_ADDR'] ?? 'http://127.0.0.1:8500';
  if (!/^https?:\/\//.test(address)) address = `${env['CONSUL_HTTP_SSL'] === 'true' ? 'https' : 'http'}://${address}`;
  address = address.replace(/\/+$/, '');
  const token = connection.token ?? env['CONSUL_HTTP_TOKEN'];
  const tls = connection.tls ?? {
    ca: env['CONSUL_CACERT'],
    cert: env['CONSUL_CLIENT_CERT'],
    key: env['CONSUL_CLIENT_KEY'],
  };
  const agent =
    address.startsWith('https://') && (tls.ca || tls.cert)
      ? new HttpsAgent({
          ca: readPem(tls.ca, 'tls.ca'),
          cert: readPem(tls.cert, 'tls.cert'),
          key: readPem(tls.key, 'tls.key'),
          keepAlive: true,
        })
      : undefined;
  return {
    address,
    ...(token ? { token } : {}),
    ...(connection.datacenter ? { datacenter: connection.datacenter } : {}),
    ...(agent ? { agent } : {}),
  };
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

import { UsageError } from '../util/errors.js';

export type KvdbType = 'etcd' | 'consul';

/** A KVDB as Portworx names it: `etcd:http://host:2379`, `consul:https://host:8501`. */
export interface KvdbEndpoint {
  type: KvdbType;
  /** One or more http(s) URLs of the same cluster. */
  urls: string[];
}

/**
 * Parses Portworx endpoint strings. Several may be given (repeated or comma-separated), all of one
 * type: `etcd:http://a:2379,etcd:http://b:2379`. A bare URL is refused: the type is not guessed.
 */
export function parseKvdbEndpoints(specs: readonly string[], what = '--target'): KvdbEndpoint {
  const parts = specs.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  if (parts.length === 0) throw new UsageError(`${what}: give an endpoint such as etcd:http://127.0.0.1:2379`);
  let type: KvdbType | undefined;
  const urls: string[] = [];
  for (const part of parts) {
    const match = /^(etcd|consul):(https?:\/\/.+)$/.exec(part);
    if (!match) {
      throw new UsageError(
        `${what}: "${part}" is not a KVDB endpoint; write etcd:http://host:2379 or consul:http://host:8500`,
      );
    }
    const [, kind, url] = match as unknown as [string, KvdbType, string];
    try {
      new URL(url);
    } catch {
      throw new UsageError(`${what}: "${url}" is not a valid URL`);
    }
    if (type !== undefined && kind !== type) {
      throw new UsageError(`${what}: mixes ${type} and ${kind} endpoints; one restore targets one cluster`);
    }
    type = kind;
    urls.push(url.replace(/\/+$/, ''));
  }
  return { type: type as KvdbType, urls };
}

export function formatKvdbEndpoint(endpoint: KvdbEndpoint): string {
  return endpoint.urls.map((u) => `${endpoint.type}:${u}`).join(',');
}

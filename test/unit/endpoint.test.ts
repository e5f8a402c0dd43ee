import { describe, expect, it } from 'vitest';
import { formatKvdbEndpoint, parseKvdbEndpoints } from '../../src/sources/endpoint.js';
import { UsageError } from '../../src/util/errors.js';

describe('Portworx endpoint form', () => {
  it('parses etcd and consul endpoints, several at once', () => {
    expect(parseKvdbEndpoints(['etcd:http://a:2379,etcd:https://b:2379/'])).toEqual({
      type: 'etcd',
      urls: ['http://a:2379', 'https://b:2379'],
    });
    expect(parseKvdbEndpoints(['consul:http://c:8500'])).toEqual({ type: 'consul', urls: ['http://c:8500'] });
    expect(formatKvdbEndpoint({ type: 'etcd', urls: ['http://a:2379', 'http://b:2379'] })).toBe('etcd:http://a:2379,etcd:http://b:2379');
  });

  it('refuses a bare URL, an unknown type and mixed clusters with a usage error', () => {
    expect(() => parseKvdbEndpoints(['http://a:2379'])).toThrow(UsageError);
    expect(() => parseKvdbEndpoints(['zk:http://a:2181'])).toThrow(/not a KVDB endpoint/);
    expect(() => parseKvdbEndpoints(['etcd:http://a:2379', 'consul:http://b:8500'])).toThrow(/mixes etcd and consul/);
    expect(() => parseKvdbEndpoints([])).toThrow(/give an endpoint/);
  });
});

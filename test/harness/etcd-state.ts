import type { Etcd3 } from 'etcd3';

/** Every key, value and mod revision in etcd, plus its revision: equal states mean nothing was written. */
export async function etcdState(etcd: Etcd3): Promise<{ revision: string; pairs: Map<string, { value: string; modRevision: string }> }> {
  const response = await etcd.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  return {
    revision: response.header.revision,
    pairs: new Map(response.kvs.map((kv) => [kv.key.toString('hex'), { value: kv.value.toString('hex'), modRevision: kv.mod_revision }])),
  };
}

/** Keys and values under a prefix as hex, for byte-exact comparisons. */
export async function etcdPairs(etcd: Etcd3, prefix: string): Promise<Map<string, string>> {
  const all = await etcd.getAll().prefix(prefix).buffers();
  return new Map(Object.entries(all).map(([k, v]) => [k, v.toString('hex')]));
}

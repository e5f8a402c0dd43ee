import { GRPCResourceExhastedError, type Etcd3, type IKeyValue } from 'etcd3';
import type { KvRecord } from '../../formats/record.js';

/** One key as etcd holds it at the export revision. */
export type EtcdRecord = Required<Pick<KvRecord, 'key' | 'value' | 'lease' | 'createRevision' | 'modRevision' | 'version'>>;

export interface RangeReaderOptions {
  /** Only keys starting with this; empty = the whole keyspace. */
  prefix: Buffer;
  /**
   * Keys per Range request; halved automatically when a page exceeds the gRPC message limit.
   * @defaultValue 1000
   */
  pageSize?: number;
}

export interface RangeReader {
  records: AsyncIterable<EtcdRecord>;
  /** The revision every page was read at; known after the first page. */
  revision(): number | undefined;
}

/**
 * Reads every key under a prefix, page by page, all pages at the revision of the first one — one
 * consistent point in time however long the read takes. Memory holds one page.
 */
export function readRange(etcd: Etcd3, options: RangeReaderOptions): RangeReader {
  let revision: number | undefined;
  const rangeEnd = prefixEnd(options.prefix);
  async function* pages(): AsyncIterable<EtcdRecord> {
    let pageSize = options.pageSize ?? 1000;
    let from = options.prefix.length === 0 ? Buffer.from([0]) : options.prefix;
    for (;;) {
      let response;
      try {
        response = await etcd.kv.range({
          key: from,
          range_end: rangeEnd,
          limit: pageSize,
          ...(revision !== undefined ? { revision } : {}),
          sort_order: 'Ascend',
          sort_target: 'Key',
        });
      } catch (err) {
        if (err instanceof GRPCResourceExhastedError && pageSize > 1) {
          pageSize = Math.max(1, Math.floor(pageSize / 2));
          continue;
        }
        throw err;
      }
      revision ??= Number(response.header.revision);
      for (const kv of response.kvs) yield toRecord(kv);
      const last = response.kvs.at(-1);
      if (!response.more || !last) return;
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }
  return { records: pages(), revision: () => revision };
}

function toRecord(kv: IKeyValue): EtcdRecord {
  return {
    key: kv.key,
    value: kv.value,
    lease: String(kv.lease ?? '0'),
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    version: Number(kv.version),
  };
}

/** The smallest key greater than every key with this prefix (etcd's range_end for a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // no upper bound: "\0" means "to the end of the keyspace"
}

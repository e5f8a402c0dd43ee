/**
 * Caps a reader puts on hostile input, so that no byte sequence can make it hold more than one
 * record's worth of memory. Every reader takes them as an optional last parameter.
 */
export interface ReaderLimits {
  /**
   * The most bytes one record may take as encoded: a JSON array element, an export line, a msgpack
   * record of a Consul snapshot. Default {@link DEFAULT_MAX_RECORD_BYTES}.
   */
  maxRecordBytes?: number;
  /**
   * The most bytes a reader that inflates on its own (the Consul snapshot, a tar.gz) may inflate.
   * Default DEFAULT_MAX_INFLATED_BYTES of inflate.ts.
   */
  maxInflatedBytes?: number;
}

/**
 * 64 MiB: far above any value etcd (1.5 MiB request by default) or Consul (512 KiB) stores, base64
 * and JSON included, and small enough that one hostile record cannot exhaust memory.
 */
export const DEFAULT_MAX_RECORD_BYTES = 64 * 1024 ** 2;

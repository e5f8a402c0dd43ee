import { randomBytes } from 'node:crypto';
import type { Etcd3 } from 'etcd3';

/** Writes `count` keys of `valueBytes` random bytes each under a prefix, in parallel batches. */
export async function fillEtcd(etcd: Etcd3, prefix: string, count: number, valueBytes: number): Promise<void> {
  const width = 16;
  for (let i = 0; i < count; i += width) {
    await Promise.all(
      Array.from({ length: Math.min(width, count - i) }, (_, j) =>
        etcd.put(`${prefix}${String(i + j).padStart(8, '0')}`).value(randomBytes(valueBytes)),
      ),
    );
  }
}

import type { KvRecord } from '../formats/record.js';
import { SetDigest } from '../formats/set-digest.js';
import type { KvTarget } from '../sources/kv-target.js';
import { KvdrError } from '../util/errors.js';
import type { KeyScope } from './key-scope.js';

/** What a restore will write, learned by reading the whole artifact once before any write. */
export interface RestorePlan {
  records: number;
  bytes: number;
  /** Records per first path segment under the scope. */
  byTopLevel: Map<string, number>;
  /** Artifact records outside `--prefix`, left out. */
  skipped: number;
  /** Records that carried an etcd lease, which a replay cannot keep. */
  leased: number;
  /** SetDigest of the records as they will be written. */
  digest: string;
}

/**
 * The pre-flight pass: reads every record (so a truncated or damaged artifact fails here, before any
 * write), maps keys into the scope, and refuses what the target cannot hold.
 */
export async function planRestore(records: AsyncIterable<KvRecord>, scope: KeyScope, target: KvTarget): Promise<RestorePlan> {
  const digest = new SetDigest();
  const byTopLevel = new Map<string, number>();
  const oversize: string[] = [];
  const badKeys: string[] = [];
  const consul = target.description.startsWith('consul:');
  let bytes = 0;
  let skipped = 0;
  let leased = 0;
  for await (const record of records) {
    const key = scope.map(record.key);
    if (!key) {
      skipped++;
      continue;
    }
    digest.add(key, record.value);
    bytes += key.length + record.value.length;
    if (record.lease && record.lease !== '0') leased++;
    const top = scope.topLevel(key);
    byTopLevel.set(top, (byTopLevel.get(top) ?? 0) + 1);
    if (target.maxValueBytes !== undefined && record.value.length > target.maxValueBytes) oversize.push(`${key.toString()} (${record.value.length} bytes)`);
    if (consul && !Buffer.from(key.toString('utf8'), 'utf8').equals(key)) badKeys.push(key.toString('hex'));
  }
  if (oversize.length > 0) {
    throw new KvdrError(
      `${target.description} holds values of at most ${target.maxValueBytes} bytes; ${oversize.length} to restore are larger (${oversize.slice(0, 3).join(', ')}${oversize.length > 3 ? ', …' : ''}); nothing was written — restore into etcd, or leave them out with --prefix`,
    );
  }
  if (badKeys.length > 0) {
    throw new KvdrError(`${target.description} keys must be UTF-8; ${badKeys.length} to restore are not (hex ${badKeys.slice(0, 3).join(', ')}); nothing was written — restore into etcd`);
  }
  return { records: digest.count, bytes, byTopLevel, skipped, leased, digest: digest.digest() };
}

import { SetDigest } from '../formats/set-digest.js';
import type { KvTarget } from '../sources/kv-target.js';
import { IntegrityError } from '../util/errors.js';
import type { KeyScope } from './key-scope.js';
import { otherPaths, TopLevelCounts, type RestorePlan } from './plan.js';

/** Reads the scope back and compares it with what was meant to be written (count and SetDigest). */
export async function verifyScope(target: KvTarget, scope: KeyScope, plan: RestorePlan): Promise<void> {
  const digest = new SetDigest();
  for await (const record of target.read(scope.scope, { splits: plan.splits })) digest.add(record.key, record.value);
  if (digest.count !== plan.records || digest.digest() !== plan.digest) {
    throw new IntegrityError(
      `${target.description}: verification failed: the scope holds ${digest.count} keys, ${plan.records} were restored` +
        `${digest.count === plan.records ? ' with different contents' : ''}; something else wrote to it meanwhile, or the write was lost`,
    );
  }
}

/** What the scope holds now, per top-level path: what a dry run says --force would delete. */
export async function scopeSummary(target: KvTarget, scope: KeyScope): Promise<TopLevelCounts> {
  const counts = new TopLevelCounts();
  for await (const record of target.read(scope.scope)) counts.add(scope.topLevel(record.key));
  return counts;
}

export function describePlan(plan: RestorePlan, existing: number, toDelete: TopLevelCounts, scope: string, target: string): string {
  const rows = (counts: TopLevelCounts): string => {
    const { rows: largest, others } = counts.summary();
    const lines = largest.map(([top, n]) => `    ${scope}${top}  ${n}`);
    if (others) lines.push(`    ${otherPaths(others.paths)}  ${others.keys}`);
    return lines.join('\n') || '    (none)';
  };
  return [
    `dry run: nothing was written to ${target}`,
    `  would delete ${existing} keys under "${scope}"${existing > 0 ? ' (needs --force)' : ''}:`,
    rows(toDelete),
    `  would write ${plan.records} keys (${plan.bytes} bytes)${plan.skipped ? `, leaving out ${plan.skipped} outside --prefix` : ''}:`,
    rows(plan.byTopLevel),
  ].join('\n');
}

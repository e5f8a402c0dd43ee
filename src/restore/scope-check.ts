import type { KvRecord } from '../formats/record.js';
import { SequenceDigest, SetDigest } from '../formats/set-digest.js';
import type { KvTarget, ReadHints } from '../sources/kv-target.js';
import { IntegrityError } from '../util/errors.js';
import type { KeyScope } from './key-scope.js';
import { otherPaths, TopLevelCounts, type RestorePlan } from './plan.js';

/**
 * Reads the scope back and compares it with what was meant to be written (count and digest), in the
 * plan's pieces; `waitFor` holds each piece until its keys are all written (see WriteFrontier). A plan
 * in key order is compared by SequenceDigest, as the scope reads back in key order too; should the
 * target hand the keys back in another order, the scope is read once more and both sides are compared
 * by SetDigest, the plan's side worked out from `planned` (the records as the replay wrote them).
 */
export async function verifyScope(
  target: KvTarget,
  scope: KeyScope,
  plan: RestorePlan,
  options: { planned: () => AsyncIterable<KvRecord>; waitFor?: ReadHints['waitFor'] },
): Promise<void> {
  const hints = { splits: plan.splits, ...(options.waitFor ? { waitFor: options.waitFor } : {}) };
  if (plan.ascending) {
    const digest = new SequenceDigest();
    let previous: Buffer | undefined;
    let inOrder = true;
    for await (const record of target.read(scope.scope, hints)) {
      if (inOrder && previous && Buffer.compare(previous, record.key) >= 0) inOrder = false;
      previous = record.key;
      digest.add(record.key, record.value);
    }
    if (inOrder) return compare(target, plan, digest.count, digest.digest() === plan.digest);
  }
  const expected = plan.ascending ? await setDigestOf(options.planned()) : plan.digest;
  const digest = new SetDigest();
  for await (const record of target.read(scope.scope, { splits: plan.splits })) digest.add(record.key, record.value);
  compare(target, plan, digest.count, digest.digest() === expected);
}

async function setDigestOf(records: AsyncIterable<KvRecord>): Promise<string> {
  const digest = new SetDigest();
  for await (const record of records) digest.add(record.key, record.value);
  return digest.digest();
}

function compare(target: KvTarget, plan: RestorePlan, count: number, same: boolean): void {
  if (count !== plan.records || !same) {
    throw new IntegrityError(
      `${target.description}: verification failed: the scope holds ${count} keys, ${plan.records} were restored` +
        `${count === plan.records ? ' with different contents' : ''}; something else wrote to it meanwhile, or the write was lost`,
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

/**
 * How far an ascending replay has got: every key up to `upTo` is written. Verification of a piece that
 * ends at key E waits until upTo >= E (E is itself a key being written, so it is reached); the last
 * piece, which ends with the prefix, waits for the end of the replay. A failed replay fails every wait.
 */
export class WriteFrontier {
  private upTo: Buffer | undefined;
  private finished = false;
  private failure: unknown;
  private waiters: { end: Buffer | undefined; resolve: () => void; reject: (err: unknown) => void }[] = [];

  advance(upTo: Buffer): void {
    this.upTo = upTo;
    this.settle();
  }

  finish(): void {
    this.finished = true;
    this.settle();
  }

  fail(err: unknown): void {
    this.failure = err ?? new Error('the replay failed');
    this.settle();
  }

  readonly waitFor = (end: Buffer | undefined): Promise<void> =>
    new Promise((resolve, reject) => {
      this.waiters.push({ end, resolve, reject });
      this.settle();
    });

  private settle(): void {
    this.waiters = this.waiters.filter((w) => {
      if (this.failure !== undefined) w.reject(this.failure);
      else if (this.finished || (w.end && this.upTo && Buffer.compare(this.upTo, w.end) >= 0)) w.resolve();
      else return true;
      return false;
    });
  }
}

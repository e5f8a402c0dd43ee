import type { RetentionConfig } from '../config/schema.js';
import { oldestFirst } from './catalog.js';
import type { Manifest } from './manifest.js';

export interface RetentionDecision {
  manifest: Manifest;
  keep: boolean;
  /** Why it is kept (several reasons may apply), or why it goes. */
  reasons: string[];
}

const DAY = 86_400_000;

/**
 * Decides which backups of one job to keep, restic-style: the newest `keepLast`, plus the newest
 * backup of each of the last `daily` days, `weekly` ISO weeks and `monthly` months that have one.
 * Whatever the policy says, nothing younger than `minDays`, nothing under an object lock that has not
 * expired, and never the job's newest backup is deleted. Pure: the clock is a parameter.
 */
export function planRetention(manifests: readonly Manifest[], policy: RetentionConfig, now: Date): RetentionDecision[] {
  const newestFirst = [...manifests].sort((a, b) => oldestFirst(b, a));
  const reasons = new Map<string, string[]>(newestFirst.map((m) => [m.id, []]));
  const add = (m: Manifest, reason: string): void => {
    reasons.get(m.id)?.push(reason);
  };

  newestFirst.slice(0, policy.keepLast).forEach((m, i) => add(m, i === 0 ? 'newest' : `last ${policy.keepLast}`));
  if (newestFirst[0]) add(newestFirst[0], 'newest of the job');
  for (const [tier, count, bucket] of [
    ['daily', policy.daily, dayOf],
    ['weekly', policy.weekly, isoWeekOf],
    ['monthly', policy.monthly, monthOf],
  ] as const) {
    const seen = new Set<string>();
    for (const m of newestFirst) {
      if (seen.size >= count) break;
      const key = bucket(new Date(m.finishedAt));
      if (seen.has(key)) continue;
      seen.add(key);
      add(m, `${tier} ${key}`);
    }
  }
  for (const m of newestFirst) {
    const age = now.getTime() - Date.parse(m.finishedAt);
    if (age < policy.minDays * DAY) add(m, `younger than ${policy.minDays} days`);
    if (m.objectLock && Date.parse(m.objectLock.retainUntil) > now.getTime()) add(m, `object lock until ${m.objectLock.retainUntil}`);
  }
  return newestFirst.map((m) => {
    const why = reasons.get(m.id) ?? [];
    return { manifest: m, keep: why.length > 0, reasons: why.length > 0 ? [...new Set(why)] : ['outside every retention rule'] };
  });
}

function dayOf(d: Date): string {
  return d.toISOString().slice(0, 10);
}

function monthOf(d: Date): string {
  return d.toISOString().slice(0, 7);
}

/** ISO 8601 week, e.g. 2026-W48 (weeks start on Monday; week 1 holds the year's first Thursday). */
export function isoWeekOf(d: Date): string {
  const day = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const weekday = day.getUTCDay() || 7;
  day.setUTCDate(day.getUTCDate() + 4 - weekday);
  const yearStart = Date.UTC(day.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((day.getTime() - yearStart) / DAY + 1) / 7);
  return `${day.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

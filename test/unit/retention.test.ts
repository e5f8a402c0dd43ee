import { describe, expect, it } from 'vitest';
import { isoWeekOf, planRetention } from '../../src/repository/retention.js';
import { sampleManifest } from '../harness/manifests.js';

const DAY = 86_400_000;
const now = new Date('2026-11-23T12:00:00Z');

/** One backup every `hours` hours going back `days` days. */
function history(days: number, hours: number): ReturnType<typeof sampleManifest>[] {
  const out = [];
  for (let t = now.getTime() - 3_600_000; t > now.getTime() - days * DAY; t -= hours * 3_600_000) {
    const at = new Date(t).toISOString();
    out.push(sampleManifest({ id: `${at.replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z')}-j-000000`, job: 'j', finishedAt: at, startedAt: at }));
  }
  return out;
}

const kept = (decisions: ReturnType<typeof planRetention>): string[] => decisions.filter((d) => d.keep).map((d) => d.manifest.finishedAt);

describe('retention', () => {
  it('keeps exactly what the rules name', () => {
    const times = ['2026-11-23T10', '2026-11-23T08', '2026-11-22T20', '2026-11-22T10', '2026-11-21T05', '2026-11-20T05', '2026-11-19T05'];
    const manifests = times.map((t, i) => sampleManifest({ id: `m${i}`, finishedAt: `${t}:00:00.000Z` }));
    const decisions = planRetention(manifests, { keepLast: 2, daily: 3, weekly: 0, monthly: 0, minDays: 0 }, now);
    expect(decisions.filter((d) => d.keep).map((d) => d.manifest.id)).toEqual(['m0', 'm1', 'm2', 'm4']);
    expect(decisions.find((d) => d.manifest.id === 'm2')?.reasons).toEqual(['daily 2026-11-22']);
    expect(decisions.find((d) => d.manifest.id === 'm3')?.reasons).toEqual(['outside every retention rule']);
  });

  it('keeps the last N, then the newest of each day, week and month', () => {
    const decisions = planRetention(history(400, 6), { keepLast: 3, daily: 7, weekly: 4, monthly: 12, minDays: 0 }, now);
    const keep = kept(decisions);
    expect(decisions.slice(0, 3).every((d) => d.keep)).toBe(true);
    const days = new Set(keep.map((t) => t.slice(0, 10)));
    expect(days.size).toBeGreaterThanOrEqual(7);
    const months = new Set(keep.map((t) => t.slice(0, 7)));
    expect(months.size).toBe(12);
    // 3 last (all on the newest day) + 6 more days + up to 4 weeks and 12 months, overlapping.
    expect(keep.length).toBeLessThanOrEqual(3 + 7 + 4 + 12);
    expect(keep.length).toBeGreaterThanOrEqual(12 + 6);
    const oldestKept = keep.at(-1) ?? '';
    expect(Date.parse(oldestKept)).toBeGreaterThan(now.getTime() - 366 * DAY);
  });

  it('never deletes what is younger than minDays, locked, or the newest of the job', () => {
    const all = history(100, 24);
    const locked = all[60];
    if (locked) locked.objectLock = { mode: 'COMPLIANCE', retainUntil: new Date(now.getTime() + DAY).toISOString() };
    const expired = all[70];
    if (expired) expired.objectLock = { mode: 'GOVERNANCE', retainUntil: new Date(now.getTime() - DAY).toISOString() };
    const decisions = planRetention(all, { keepLast: 1, daily: 0, weekly: 0, monthly: 0, minDays: 35 }, now);
    const byTime = new Map(decisions.map((d) => [d.manifest.finishedAt, d]));
    for (const d of decisions) {
      const young = now.getTime() - Date.parse(d.manifest.finishedAt) < 35 * DAY;
      if (young) expect(d.keep).toBe(true);
    }
    expect(byTime.get(locked?.finishedAt ?? '')?.reasons.join()).toMatch(/object lock until/);
    expect(byTime.get(expired?.finishedAt ?? '')?.keep).toBe(false);
    expect(decisions.filter((d) => d.keep)).toHaveLength(36); // 35 young days (incl. the newest) + the locked one
  });

  it('keeps the newest backup even when every rule is zero', () => {
    const decisions = planRetention(history(10, 24), { keepLast: 0, daily: 0, weekly: 0, monthly: 0, minDays: 0 }, now);
    expect(kept(decisions)).toHaveLength(1);
    expect(decisions[0]?.reasons).toContain('newest of the job');
  });

  it('counts ISO weeks from Monday, with week 1 holding the first Thursday', () => {
    expect(isoWeekOf(new Date('2026-01-01T00:00:00Z'))).toBe('2026-W01');
    expect(isoWeekOf(new Date('2027-01-01T00:00:00Z'))).toBe('2026-W53');
    expect(isoWeekOf(new Date('2026-11-23T00:00:00Z'))).toBe('2026-W48');
    expect(isoWeekOf(new Date('2026-11-22T23:59:59Z'))).toBe('2026-W47');
  });
});

import { describe, expect, it } from 'vitest';
import { cronSlots } from '../../src/scheduler/cron-slots.js';

const iso = (dates: Date[]): string[] => dates.map((d) => d.toISOString());

describe('cron slots', () => {
  it('lists every slot of an hourly schedule in a window, ends included', () => {
    const slots = cronSlots('0 * * * *', 'UTC', new Date('2026-11-01T00:00:00Z'), new Date('2026-11-02T00:00:00Z'));
    expect(slots).toHaveLength(25);
    expect(iso(slots).slice(0, 2)).toEqual(['2026-11-01T00:00:00.000Z', '2026-11-01T01:00:00.000Z']);
  });

  it('evaluates the schedule in its time zone, including half-hour offsets', () => {
    const window = [new Date('2026-11-01T00:00:00Z'), new Date('2026-11-03T00:00:00Z')] as const;
    expect(iso(cronSlots('30 2 * * *', 'America/New_York', ...window))).toEqual(['2026-11-01T07:30:00.000Z', '2026-11-02T07:30:00.000Z']);
    expect(iso(cronSlots('0 6 * * *', 'Asia/Kolkata', ...window))).toEqual(['2026-11-01T00:30:00.000Z', '2026-11-02T00:30:00.000Z']);
  });

  it('handles schedules with seconds and weekdays', () => {
    expect(cronSlots('15,45 0 3 * * 1', 'UTC', new Date('2026-11-01T00:00:00Z'), new Date('2026-11-30T00:00:00Z'))).toHaveLength(8);
  });

  it('counts a year of an hourly schedule', () => {
    expect(cronSlots('0 * * * *', 'UTC', new Date('2025-11-01T00:00:00Z'), new Date('2026-11-01T00:00:00Z')).length).toBe(8761);
  });
});

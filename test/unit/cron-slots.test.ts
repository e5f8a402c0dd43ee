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
  it('counts the repeated hour at the end of daylight saving once, as node-cron runs it', () => {
    // 2026-11-01 01:30 happens twice in New York (EDT, then EST).
    const slots = cronSlots('30 1 * * *', 'America/New_York', new Date('2026-10-31T12:00:00Z'), new Date('2026-11-02T12:00:00Z'));
    expect(iso(slots)).toEqual(['2026-11-01T05:30:00.000Z', '2026-11-02T06:30:00.000Z']);
  });

  it('finds the slots of sparse schedules, whose days the scan skips', () => {
    expect(iso(cronSlots('0 0 1 1 *', 'UTC', new Date('2024-06-01T00:00:00Z'), new Date('2026-11-24T00:00:00Z')))).toEqual(['2025-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z']);
    expect(iso(cronSlots('0 0 29 2 *', 'Pacific/Auckland', new Date('2022-01-01T00:00:00Z'), new Date('2026-11-24T00:00:00Z')))).toEqual(['2024-02-28T11:00:00.000Z']);
  });
});


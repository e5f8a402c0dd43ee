import { createTask, parse } from 'node-cron';

const MINUTE = 60_000;
const DAY = 86_400_000;
/** Every time zone's offset is a multiple of 15 minutes, so a local minute-of-hour is one of these shifts. */
const OFFSET_SHIFTS = [0, 15, 30, 45];

/**
 * The times a cron schedule fired (or should have) in [from, to], in its time zone, as node-cron
 * fires them; the first `limit` of them. Only UTC days whose neighbourhood (offsets are within a day)
 * has a matching month and day, and minutes whose minute-of-hour can match under some offset, are tried:
 * a year of an hourly schedule is a few thousand matches, two years of a yearly one a few hundred.
 * A wall-clock time that happens twice (the hour repeated when daylight saving ends) is one slot, as
 * node-cron runs it once.
 */
export function cronSlots(expression: string, timezone: string, from: Date, to: Date, limit = Infinity): Date[] {
  const fields = parse(expression);
  const minutes = new Set(fields.minute);
  const months = new Set(fields.month);
  const numbers = (values: readonly (number | string)[]): number[] => values.filter((v): v is number => typeof v === 'number');
  // Forms such as `L` (last day) or `1#2` (second Monday) come as strings: any day of the month may match.
  const special = [...fields.dayOfMonth, ...fields.dayOfWeek].some((v) => typeof v === 'string');
  const monthDays = new Set(numbers(fields.dayOfMonth));
  const weekDays = new Set(numbers(fields.dayOfWeek).map((d) => d % 7));
  // As in cron, a restricted day-of-month or day-of-week matches alone when the other is `*`, and
  // either one matches when both are restricted.
  const anyWeekDay = weekDays.size === 7;
  const anyMonthDay = monthDays.size >= 31;
  const dayMayMatch = (utcDay: number): boolean =>
    [-DAY, 0, DAY].some((shift) => {
      const d = new Date(utcDay + shift);
      if (!months.has(d.getUTCMonth() + 1)) return false;
      if (special) return true;
      if (anyWeekDay) return monthDays.has(d.getUTCDate());
      if (anyMonthDay) return weekDays.has(d.getUTCDay());
      return monthDays.has(d.getUTCDate()) || weekDays.has(d.getUTCDay());
    });
  const wallClock = new Intl.DateTimeFormat('en-CA', { timeZone: timezone, dateStyle: 'short', timeStyle: 'medium', hourCycle: 'h23' });
  const task = createTask(expression, () => undefined, { timezone });
  const slots: Date[] = [];
  let lastWallClock = '';
  try {
    for (let minute = Math.floor(from.getTime() / MINUTE) * MINUTE; minute <= to.getTime() && slots.length < limit; minute += MINUTE) {
      const day = Math.floor(minute / DAY) * DAY;
      if (!dayMayMatch(day)) {
        minute = day + DAY - MINUTE; // on to the next UTC day
        continue;
      }
      const utcMinute = new Date(minute).getUTCMinutes();
      if (!OFFSET_SHIFTS.some((shift) => minutes.has((utcMinute + shift) % 60))) continue;
      for (const second of fields.second) {
        const at = minute + second * 1000;
        if (at < from.getTime() || at > to.getTime() || slots.length >= limit || !task.match(new Date(at))) continue;
        const local = wallClock.format(at);
        if (local === lastWallClock) continue; // the repeated hour at the end of daylight saving
        lastWallClock = local;
        slots.push(new Date(at));
      }
    }
  } finally {
    void task.destroy();
  }
  return slots;
}

import { createTask, parse } from 'node-cron';

const MINUTE = 60_000;
/** Every time zone's offset is a multiple of 15 minutes, so a local minute-of-hour is one of these shifts. */
const OFFSET_SHIFTS = [0, 15, 30, 45];

/**
 * The times a cron schedule fired (or should have) in [from, to], in its time zone, as node-cron
 * matches them; the first `limit` of them. Only minutes whose minute-of-hour can match under some offset are tried, which keeps a
 * year of an hourly schedule to a few thousand matches.
 */
export function cronSlots(expression: string, timezone: string, from: Date, to: Date, limit = Infinity): Date[] {
  const fields = parse(expression);
  const minutes = new Set(fields.minute);
  const task = createTask(expression, () => undefined, { timezone });
  const slots: Date[] = [];
  try {
    for (let minute = Math.floor(from.getTime() / MINUTE) * MINUTE; minute <= to.getTime() && slots.length < limit; minute += MINUTE) {
      const utcMinute = new Date(minute).getUTCMinutes();
      if (!OFFSET_SHIFTS.some((shift) => minutes.has((utcMinute + shift) % 60))) continue;
      for (const second of fields.second) {
        const at = minute + second * 1000;
        if (at < from.getTime() || at > to.getTime()) continue;
        if (slots.length < limit && task.match(new Date(at))) slots.push(new Date(at));
      }
    }
  } finally {
    void task.destroy();
  }
  return slots;
}

import { createTask } from 'node-cron';
import { cronSlots } from './cron-slots.js';

/** The time between two consecutive slots of a schedule, from the next two runs after `now`. */
export function schedulePeriodMs(expression: string, timezone: string): number {
  const task = createTask(expression, () => undefined, { timezone });
  try {
    const [first, second] = task.getNextRuns(2);
    if (!first || !second) throw new Error(`schedule "${expression}" has no next runs`);
    return second.getTime() - first.getTime();
  } finally {
    void task.destroy();
  }
}

/**
 * The newest slot of a schedule at or before `now`. Looked for over two periods first (cheap even for a
 * schedule with seconds), then over wider windows for schedules whose gaps are uneven (weekdays only,
 * the 1st and 2nd of each month) — up to 400 days, which holds a slot of any yearly schedule.
 */
export function previousSlot(expression: string, timezone: string, now: Date): Date | undefined {
  const period = schedulePeriodMs(expression, timezone);
  for (const window of [2 * period + 60_000, ...[8, 62, 400].map((days) => Math.max(2 * period, days * 86_400_000))]) {
    const slot = cronSlots(expression, timezone, new Date(now.getTime() - window), now).at(-1);
    if (slot) return slot;
  }
  return undefined;
}

/**
 * A job runs once now (on start, or when this replica becomes leader) when it has no success since its
 * newest slot: the service was down over it, or leadership was unsure when it fired. A schedule so sparse
 * that no slot is found falls back to comparing the last success with the period.
 */
export function needsCatchUp(lastSuccess: Date | undefined, expression: string, timezone: string, now: Date): boolean {
  if (lastSuccess === undefined) return true;
  const slot = previousSlot(expression, timezone, now);
  if (slot) return lastSuccess.getTime() < slot.getTime();
  return now.getTime() - lastSuccess.getTime() > schedulePeriodMs(expression, timezone);
}

import { createTask } from 'node-cron';

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
 * On start, a job whose last success is older than its period runs once, so a service that was down
 * over a slot (or never ran the job) does not wait a whole period for the next one.
 */
export function needsCatchUp(lastSuccess: Date | undefined, periodMs: number, now: Date): boolean {
  return lastSuccess === undefined || now.getTime() - lastSuccess.getTime() > periodMs;
}

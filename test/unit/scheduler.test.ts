import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { configSchema, type JobConfig } from '../../src/config/schema.js';
import { needsCatchUp, previousSlot, schedulePeriodMs } from '../../src/scheduler/catch-up.js';
import { backoffDelay, withRetries } from '../../src/scheduler/retry.js';
import type { Leadership } from '../../src/scheduler/leadership.js';
import { Scheduler } from '../../src/scheduler/scheduler.js';
import { IntegrityError } from '../../src/util/errors.js';
import { quietLogger } from '../harness/config.js';

describe('retries', () => {
  it('back off exponentially with full jitter, capped', () => {
    expect(backoffDelay(0, 1000, 60_000, () => 0.999)).toBe(999);
    expect(backoffDelay(3, 1000, 60_000, () => 0.5)).toBe(4000);
    expect(backoffDelay(10, 1000, 60_000, () => 0.999)).toBe(59_940);
    expect(backoffDelay(2, 1000, 60_000, () => 0)).toBe(0);
  });

  it('retry until success, then give up after the configured count', async () => {
    const sleeps: number[] = [];
    const sleep = (ms: number): Promise<void> => {
      sleeps.push(ms);
      return Promise.resolve();
    };
    let calls = 0;
    expect(await withRetries(async () => (++calls < 3 ? Promise.reject(new Error('flaky')) : 'ok'), { retries: 3, sleep, random: () => 1, baseDelayMs: 100 })).toBe('ok');
    expect(sleeps).toEqual([100, 200]);
    await expect(withRetries(() => Promise.reject(new Error('down')), { retries: 2, sleep, random: () => 0 })).rejects.toThrow('down');
  });

  it('do not retry what the caller says cannot pass on a second try', async () => {
    let calls = 0;
    const failing = (): Promise<never> => {
      calls++;
      return Promise.reject(new Error('backup 1 no longer matches its manifest'));
    };
    await expect(withRetries(failing, { retries: 5, retryable: () => false, sleep: () => Promise.resolve() })).rejects.toThrow('no longer matches');
    expect(calls).toBe(1);
  });

  it('stop retrying once aborted', async () => {
    const controller = new AbortController();
    let calls = 0;
    const failing = (): Promise<never> => {
      calls++;
      controller.abort();
      return Promise.reject(new Error('aborted run'));
    };
    await expect(withRetries(failing, { retries: 5, signal: controller.signal, sleep: () => Promise.resolve() })).rejects.toThrow('aborted run');
    expect(calls).toBe(1);
  });
});

describe('catch-up', () => {
  it('knows a schedule period', () => {
    expect(schedulePeriodMs('0 * * * *', 'UTC')).toBe(3_600_000);
    expect(schedulePeriodMs('*/5 * * * * *', 'UTC')).toBe(5_000);
  });

  it('runs once when there is no success since the newest slot, or none at all', () => {
    const now = new Date('2026-11-23T12:00:05Z');
    expect(needsCatchUp(undefined, '0 * * * *', 'UTC', now)).toBe(true);
    expect(needsCatchUp(new Date('2026-11-23T11:00:30Z'), '0 * * * *', 'UTC', now)).toBe(true); // the 12:00 slot was missed
    expect(needsCatchUp(new Date('2026-11-23T12:00:02Z'), '0 * * * *', 'UTC', now)).toBe(false);
    // Weekdays at 09:00: on Monday morning the newest slot is Friday's.
    const monday = new Date('2026-11-23T08:00:00Z');
    expect(previousSlot('0 9 * * 1-5', 'UTC', monday)?.toISOString()).toBe('2026-11-20T09:00:00.000Z');
    expect(needsCatchUp(new Date('2026-11-20T09:00:40Z'), '0 9 * * 1-5', 'UTC', monday)).toBe(false);
    expect(needsCatchUp(new Date('2026-11-19T09:00:40Z'), '0 9 * * 1-5', 'UTC', monday)).toBe(true);
    expect(previousSlot('*/10 * * * * *', 'UTC', new Date('2026-11-23T12:00:05.500Z'))?.toISOString()).toBe('2026-11-23T12:00:00.000Z');
    // Uneven gaps (a one-day period, then a month): the newest slot is still found.
    expect(previousSlot('0 0 1,2 * *', 'UTC', new Date('2026-11-24T04:00:00Z'))?.toISOString()).toBe('2026-11-02T00:00:00.000Z');
    expect(previousSlot('0 0 1 1 *', 'UTC', new Date('2026-11-24T04:00:00Z'))?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
  });
});

describe('scheduler (fake clock)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-11-23T12:00:00.500Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const config = (jobs: Partial<JobConfig>[]) =>
    configSchema.parse({
      sources: [{ name: 's', type: 'etcd', endpoints: ['http://127.0.0.1:2379'] }],
      repositories: [{ name: 'r', type: 'fs', path: '/tmp/unused' }],
      jobs: jobs.map((j, i) => ({ name: `j${i}`, source: 's', kind: 'etcd-export', schedule: '*/10 * * * * *', repository: 'r', retries: 0, ...j })),
    });

  it('catches up a job that never succeeded, then runs it on every slot', async () => {
    const runs: string[] = [];
    const scheduler = new Scheduler({
      config: config([{}]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(undefined),
      runJob: () => {
        runs.push(new Date().toISOString());
        return Promise.resolve();
      },
    });
    await scheduler.start();
    expect(runs).toHaveLength(1); // catch-up
    await vi.advanceTimersByTimeAsync(30_000);
    await scheduler.close();
    expect(runs.slice(1)).toEqual(['2026-11-23T12:00:10.000Z', '2026-11-23T12:00:20.000Z', '2026-11-23T12:00:30.000Z']);
  });

  it('does not catch up a job that succeeded within its period', async () => {
    let runs = 0;
    const scheduler = new Scheduler({
      config: config([{}]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(new Date('2026-11-23T12:00:00Z')),
      runJob: () => {
        runs++;
        return Promise.resolve();
      },
    });
    await scheduler.start();
    expect(runs).toBe(0);
    await scheduler.close();
  });

  it('never runs a job twice at once: slots that find it running are skipped', async () => {
    let running = 0;
    let most = 0;
    let release: () => void = () => undefined;
    const scheduler = new Scheduler({
      config: config([{}]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(new Date()),
      shutdownGraceMs: 1_000,
      runJob: () =>
        new Promise<void>((resolve) => {
          running++;
          most = Math.max(most, running);
          release = () => {
            running--;
            resolve();
          };
        }),
    });
    await scheduler.start();
    await vi.advanceTimersByTimeAsync(45_000);
    expect(most).toBe(1);
    expect(scheduler.status()[0]?.running).toBe(true);
    release();
    await scheduler.close();
    expect(scheduler.status()[0]?.lastRun?.ok).toBe(true);
  });

  it('aborts a run at its timeout and records the failure', async () => {
    const scheduler = new Scheduler({
      config: config([{ timeoutMinutes: 0.5 }]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(undefined),
      runJob: (_job, signal) => new Promise<void>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error))),
    });
    await scheduler.start();
    await vi.advanceTimersByTimeAsync(31_000);
    const status = scheduler.status()[0];
    expect(status?.lastRun?.ok).toBe(false);
    expect(status?.lastRun?.error).toBe('timed out after 0.5 minutes');
    await scheduler.close();
  });

  it('close() lets a running job finish within the grace period, then aborts it; twice is fine', async () => {
    const aborted: string[] = [];
    const scheduler = new Scheduler({
      config: config([{ retries: 2 }]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(undefined),
      shutdownGraceMs: 5_000,
      runJob: (_job, signal) =>
        new Promise<void>((_resolve, reject) =>
          signal.addEventListener('abort', () => {
            aborted.push(new Date().toISOString());
            reject(new Error('aborted'));
          }),
        ),
    });
    await scheduler.start();
    const closing = scheduler.close();
    const again = scheduler.close();
    await vi.advanceTimersByTimeAsync(5_001);
    await Promise.all([closing, again]);
    expect(aborted).toEqual(['2026-11-23T12:00:05.500Z']); // exactly the 5 s grace after close()
    expect(scheduler.status()[0]?.lastRun?.error).toBe('aborted');
    expect(scheduler.trigger('j0', 'manual')).toBeUndefined(); // nothing starts after close
  });
  /** Slot claims as the elected backends make them: first come, and again for the holder. */
  function claimingReplica(id: string, claims: Map<string, string>, leader = true): Leadership {
    return {
      role: () => (leader ? 'leader' : 'follower'),
      isLeader: () => leader,
      onChange: () => undefined,
      claimSlot: (job, slot) => {
        const key = `${job}/${slot.toISOString()}`;
        if (!claims.has(key)) claims.set(key, id);
        return Promise.resolve(claims.get(key) === id);
      },
      close: () => Promise.resolve(),
    };
  }

  it('retries a failed slot under leader election, and another replica does not run it', async () => {
    const claims = new Map<string, string>();
    let attempts = 0;
    const ends: boolean[] = [];
    const leader = new Scheduler({
      config: config([{ retries: 2 }]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(new Date()),
      leadership: claimingReplica('a', claims),
      retry: { sleep: () => Promise.resolve() },
      runJob: () => (++attempts < 3 ? Promise.reject(new Error('etcd is flaky')) : Promise.resolve()),
      onRun: (event) => {
        if (event.phase === 'end') ends.push(event.ok);
      },
    });
    let otherRuns = 0;
    const other = new Scheduler({
      config: config([{ retries: 2 }]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(new Date()),
      leadership: claimingReplica('b', claims),
      runJob: () => {
        otherRuns++;
        return Promise.resolve();
      },
    });
    await leader.start();
    await vi.advanceTimersByTimeAsync(9_600); // the 12:00:10 slot, claimed by the first replica
    await other.start();
    await other.trigger('j0', 'schedule', new Date('2026-11-23T12:00:10.000Z'));
    await leader.close();
    await other.close();
    expect(attempts).toBe(3);
    expect(ends).toEqual([true]);
    expect(leader.status()[0]?.lastRun?.ok).toBe(true);
    expect(otherRuns).toBe(0);
  });

  it('a follower knows the last success of each job from the start, and runs nothing', async () => {
    let runs = 0;
    const scheduler = new Scheduler({
      config: config([{}]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(new Date('2026-11-23T11:00:00Z')),
      leadership: claimingReplica('f', new Map(), false),
      runJob: () => {
        runs++;
        return Promise.resolve();
      },
    });
    await scheduler.start();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(scheduler.status()[0]?.lastSuccess).toBe('2026-11-23T11:00:00.000Z');
    expect(runs).toBe(0);
    await scheduler.close();
  });

  it('fires on the wall clock of the timezone of the job', async () => {
    const runs: string[] = [];
    const scheduler = new Scheduler({
      config: config([{ schedule: '0 7 * * *', timezone: 'Europe/Berlin' }]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(new Date()),
      runJob: () => {
        runs.push(new Date().toISOString());
        return Promise.resolve();
      },
    });
    await scheduler.start();
    await vi.advanceTimersByTimeAsync(24 * 3_600_000);
    await scheduler.close();
    expect(runs).toEqual(['2026-11-24T06:00:00.000Z']); // 07:00 in Berlin is 06:00 UTC in winter
  });
  it('catches up drills after the backups they test, not beside them', async () => {
    const events: string[] = [];
    const drillConfig = configSchema.parse({
      sources: [{ name: 's', type: 'etcd', endpoints: ['http://127.0.0.1:2379'] }],
      repositories: [{ name: 'r', type: 'fs', path: '/tmp/unused' }],
      jobs: [
        { name: 'drill', source: 's', kind: 'restore-test', schedule: '0 4 * * 0', drill: { job: 'hourly', toPrefix: 'scratch/' }, retries: 0 },
        { name: 'hourly', source: 's', kind: 'etcd-export', schedule: '0 * * * *', repository: 'r', retries: 0 },
      ],
    });
    const scheduler = new Scheduler({
      config: drillConfig,
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(undefined),
      runJob: async (job) => {
        events.push(`${job.name} start`);
        await new Promise((resolve) => setTimeout(resolve, 5_000));
        events.push(`${job.name} end`);
      },
    });
    await scheduler.start();
    await vi.advanceTimersByTimeAsync(11_000);
    await scheduler.close();
    expect(events).toEqual(['hourly start', 'hourly end', 'drill start', 'drill end']);
  });
  it('runs a slot that fired while leadership was unconfirmed once it is confirmed again', async () => {
    let leader = true;
    const listeners: ((leader: boolean) => void)[] = [];
    const flip = (value: boolean): void => {
      leader = value;
      for (const listener of listeners) listener(value);
    };
    const runs: string[] = [];
    const scheduler = new Scheduler({
      config: config([{}]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(new Date('2026-11-23T12:00:00.200Z')),
      leadership: {
        role: () => (leader ? 'leader' : 'follower'),
        isLeader: () => leader,
        onChange: (listener) => listeners.push(listener),
        claimSlot: () => Promise.resolve(true),
        close: () => Promise.resolve(),
      },
      runJob: () => {
        runs.push(new Date().toISOString());
        return Promise.resolve();
      },
    });
    await scheduler.start();
    await vi.advanceTimersByTimeAsync(4_500);
    flip(false); // 12:00:05: the KVDB stalls; the 12:00:10 slot fires on no leader
    await vi.advanceTimersByTimeAsync(7_000);
    flip(true); // 12:00:12: confirmed again
    await vi.advanceTimersByTimeAsync(9_000);
    await scheduler.close();
    expect(runs).toEqual(['2026-11-23T12:00:12.000Z', '2026-11-23T12:00:20.000Z']);
  });
  it('does not retry a run whose stored backup failed its check', async () => {
    let attempts = 0;
    const scheduler = new Scheduler({
      config: config([{ retries: 3 }]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(undefined),
      retry: { sleep: () => Promise.resolve() },
      runJob: () => {
        attempts++;
        return Promise.reject(new IntegrityError('1 of 3 backups failed verification'));
      },
    });
    await scheduler.start();
    await vi.advanceTimersByTimeAsync(100);
    await scheduler.close();
    expect(attempts).toBe(1);
    expect(scheduler.status()[0]?.lastRun?.error).toBe('1 of 3 backups failed verification');
  });
  it('runs px-dumps jobs on every replica, unclaimed, and other jobs on the leader only', async () => {
    const runs: string[] = [];
    let claims = 0;
    const follower = new Scheduler({
      config: config([{ kind: 'px-dumps' }, {}]),
      logger: quietLogger,
      lastSuccess: () => Promise.resolve(new Date()),
      leadership: {
        role: () => 'follower',
        isLeader: () => false,
        onChange: () => undefined,
        claimSlot: () => {
          claims++;
          return Promise.resolve(true);
        },
        close: () => Promise.resolve(),
      },
      runJob: (job) => {
        runs.push(job.name);
        return Promise.resolve();
      },
    });
    await follower.start();
    await vi.advanceTimersByTimeAsync(20_000);
    await follower.close();
    expect(runs).toEqual(['j0', 'j0', 'j0']); // at start (this node may hold a dump nobody stored), then each slot
    expect(claims).toBe(0);
  });
});


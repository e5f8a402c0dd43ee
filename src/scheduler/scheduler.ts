import { createTask, type ScheduledTask } from 'node-cron';
import { isBackupJob, type JobConfig, type KvdrConfig } from '../config/schema.js';
import { IntegrityError, oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { needsCatchUp } from './catch-up.js';
import { SingleReplica, type Leadership } from './leadership.js';
import { withRetries, type RetryOptions } from './retry.js';

export interface JobStatus {
  job: string;
  schedule: string;
  running: boolean;
  lastRun?: { startedAt: string; finishedAt: string; ok: boolean; error?: string };
  lastSuccess?: string;
  nextRun?: string;
}

export interface SchedulerOptions {
  config: KvdrConfig;
  logger: Logger;
  /** Runs one job to the end; must stop promptly when the signal aborts. May report bytes stored. */
  runJob: (job: JobConfig, signal: AbortSignal, run: RunContext) => Promise<{ bytes?: number } | void>;
  /** Told when a run starts and ends (metrics). */
  onRun?: (event: { job: string; phase: 'start' } | { job: string; phase: 'end'; ok: boolean; seconds: number; bytes?: number }) => void;
  /** The time of a job's newest successful backup, for catch-up. */
  lastSuccess: (job: JobConfig) => Promise<Date | undefined>;
  /** @defaultValue () => new Date() */
  now?: () => Date;
  /** How long close() lets running jobs finish before aborting them. @defaultValue 30000 */
  shutdownGraceMs?: number;
  /** Backoff tuning and test hooks for retries (the count comes from each job). */
  retry?: Omit<RetryOptions, 'retries' | 'signal'>;
  /** Only the leader schedules, and each slot is claimed once. @defaultValue a single replica */
  leadership?: Leadership;
  /** How often a follower re-reads each job's last success, so its status stays current. @defaultValue 300000 */
  followerRefreshMs?: number;
}

/** What started a run: a cron slot, a catch-up at start, a settled PX dump, or an operator. */
export type RunTrigger = 'schedule' | 'catch-up' | 'watch' | 'manual';

/** Why a run happened: recorded in its manifest, so audits can tell slots from catch-ups. */
export interface RunContext {
  trigger: RunTrigger;
  /** The cron slot, for scheduled runs. */
  slot?: string;
}

const SKIPPED = Symbol('slot run elsewhere');

/**
 * PX dumps are files on the node that wrote them: each replica collects the dump directories it sees,
 * leader or not, and unclaimed (the content hash keeps a dump from being stored twice).
 */
function onEveryReplica(job: JobConfig): boolean {
  return job.kind === 'px-dumps';
}

interface JobState {
  job: JobConfig;
  task: ScheduledTask;
  running?: Promise<void>;
  controller?: AbortController;
  status: JobStatus;
}

/**
 * Runs the configured jobs on their cron schedules (node-cron; UTC unless a job names a timezone).
 * A job never runs twice at once (a slot that finds it running is skipped and logged); each run has
 * the job's timeout and retries with exponential backoff and jitter; on start, a job whose last success
 * is older than its period runs once. close() stops scheduling, lets running jobs finish up to a
 * deadline, then aborts them — an aborted backup writes no manifest.
 */
export class Scheduler {
  private readonly states = new Map<string, JobState>();
  private closing: Promise<void> | undefined;
  private readonly leadership: Leadership;
  private followerRefresh: NodeJS.Timeout | undefined;

  constructor(private readonly options: SchedulerOptions) {
    this.leadership = options.leadership ?? new SingleReplica();
  }

  async start(): Promise<void> {
    const { config, logger } = this.options;
    for (const job of config.jobs) {
      const task = createTask(job.schedule, (context) => void this.trigger(job.name, 'schedule', context.date), { timezone: job.timezone, name: job.name });
      this.states.set(job.name, { job, task, status: { job: job.name, schedule: job.schedule, running: false } });
    }
    for (const state of this.states.values()) {
      if (this.closing) return; // closed while starting
      await state.task.start();
    }
    // A replica that becomes leader catches up what the old leader left undone.
    this.leadership.onChange((leader) => {
      if (leader) void this.catchUp();
    });
    // Every replica knows the last successes from the start: status and staleness alerts need them
    // before (and whether or not) this replica runs anything.
    if (this.leadership.isLeader()) await this.catchUp();
    else {
      await this.refreshLastSuccess();
      // The catalog cannot say whether this node has a dump nobody stored: look now, not at the next slot.
      for (const state of this.states.values()) if (onEveryReplica(state.job)) void this.trigger(state.job.name, 'catch-up');
    }
    if (this.closing) return;
    this.followerRefresh = setInterval(() => {
      if (!this.leadership.isLeader()) void this.refreshLastSuccess();
    }, this.options.followerRefreshMs ?? 300_000);
    this.followerRefresh.unref();
    logger.info({ jobs: config.jobs.map((j) => j.name) }, `scheduler started with ${config.jobs.length} jobs`);
  }

  private async catchUp(): Promise<void> {
    const now = this.options.now ?? (() => new Date());
    await this.refreshLastSuccess();
    const due = [...this.states.values()].filter((state) => {
      if (onEveryReplica(state.job)) return true;
      const last = state.status.lastSuccess === undefined ? undefined : new Date(state.status.lastSuccess);
      if (!needsCatchUp(last, state.job.schedule, state.job.timezone, now())) return false;
      this.options.logger.info({ job: state.job.name, lastSuccess: last?.toISOString() ?? 'never' }, `${state.job.name} missed a slot: running it now`);
      return true;
    });
    // A drill restores the latest backup of the job it tests and a verify run re-reads backups: on a first
    // start they would find none if they ran beside the backups' catch-up, so they catch up afterwards.
    const backups = due
      .filter((s) => isBackupJob(s.job))
      .map((s) => this.trigger(s.job.name, 'catch-up'))
      .filter((run): run is Promise<void> => run !== undefined);
    const drills = due.filter((s) => !isBackupJob(s.job));
    if (drills.length > 0) {
      void Promise.allSettled(backups).then(() => {
        for (const drill of drills) void this.trigger(drill.job.name, 'catch-up');
      });
    }
  }

  /** Reads each job's last success from where it is recorded (another replica may have run it). */
  private async refreshLastSuccess(): Promise<void> {
    for (const state of this.states.values()) {
      const last = await this.options.lastSuccess(state.job).catch((err: unknown) => {
        this.options.logger.warn({ job: state.job.name }, `cannot read the last success of ${state.job.name}: ${oneLine(err)}`);
        return undefined;
      });
      const known = state.status.lastSuccess === undefined ? 0 : Date.parse(state.status.lastSuccess);
      if (last && last.getTime() > known) state.status.lastSuccess = last.toISOString();
    }
  }

  /** Starts a run unless one is going (no overlap). Returns the run, for callers that wait. */
  trigger(name: string, why: RunTrigger, slot?: Date): Promise<void> | undefined {
    const state = this.states.get(name);
    if (!state || this.closing || (!this.leadership.isLeader() && !onEveryReplica(state.job))) return undefined;
    if (state.running) {
      this.options.logger.warn({ job: name }, `${name}: the previous run is still going; this ${why} slot is skipped`);
      return undefined;
    }
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(new Error(`timed out after ${state.job.timeoutMinutes} minutes`)), state.job.timeoutMinutes * 60_000);
    const startedAt = new Date();
    state.controller = controller;
    state.status.running = true;
    const seconds = (): number => (Date.now() - startedAt.getTime()) / 1000;
    const run = async (): Promise<{ bytes?: number } | void | typeof SKIPPED> => {
      if (slot && !onEveryReplica(state.job) && !(await this.leadership.claimSlot(name, slot))) {
        this.options.logger.info({ job: name, slot: slot.toISOString() }, `${name}: slot ${slot.toISOString()} was already run by another replica`);
        return SKIPPED;
      }
      this.options.onRun?.({ job: name, phase: 'start' });
      return this.options.runJob(state.job, controller.signal, { trigger: why, ...(slot ? { slot: slot.toISOString() } : {}) });
    };
    state.running = withRetries(run, {
      ...this.options.retry,
      retries: state.job.retries,
      signal: controller.signal,
      // A stored backup that fails its check stays failed: another try (a verify job's next random
      // sample) would only hide it. (A partial px-dumps run is retried: stored dumps are skipped by
      // content, and a dump whose upload failed while S3 was away gets another chance.)
      retryable: (err) => !(err instanceof IntegrityError),
      onRetry: (attempt, delayMs, err) =>
        this.options.logger.warn({ job: name, attempt, delayMs }, `${name} failed (${oneLine(err)}); retry ${attempt} of ${state.job.retries} in ${Math.round(delayMs / 1000)}s`),
    })
      .then(
        (result) => {
          if (result === SKIPPED) return;
          const finishedAt = new Date().toISOString();
          state.status.lastRun = { startedAt: startedAt.toISOString(), finishedAt, ok: true };
          state.status.lastSuccess = finishedAt;
          this.options.onRun?.({ job: name, phase: 'end', ok: true, seconds: seconds(), ...(result?.bytes !== undefined ? { bytes: result.bytes } : {}) });
        },
        (err: unknown) => {
          state.status.lastRun = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), ok: false, error: oneLine(err) };
          this.options.logger.error({ job: name }, `${name} failed: ${oneLine(err)}`);
          this.options.onRun?.({ job: name, phase: 'end', ok: false, seconds: seconds() });
        },
      )
      .finally(() => {
        clearTimeout(timeout);
        state.running = undefined;
        state.controller = undefined;
        state.status.running = false;
      });
    return state.running;
  }

  status(): JobStatus[] {
    return [...this.states.values()].map((s) => ({ ...s.status, ...(s.task.getNextRun() ? { nextRun: s.task.getNextRun()?.toISOString() } : {}) }));
  }

  /** Idempotent: the second call waits for the first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.followerRefresh);
      for (const state of this.states.values()) await state.task.destroy();
      const running = [...this.states.values()].filter((s) => s.running !== undefined);
      if (running.length === 0) return;
      this.options.logger.info({ jobs: running.map((s) => s.job.name) }, 'waiting for running jobs to finish');
      const grace = this.options.shutdownGraceMs ?? 30_000;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), grace)));
      const all = Promise.all(running.map((s) => s.running ?? Promise.resolve())).then(() => 'done' as const);
      if ((await Promise.race([all, deadline])) === 'late') {
        this.options.logger.warn(`jobs still running after ${grace} ms: aborting them (no manifest is written for an aborted backup)`);
        for (const s of running) s.controller?.abort(new Error('the service is shutting down'));
        // A job that ignores its abort (stuck on a dead connection) must not hold the shutdown forever.
        let stuckTimer: NodeJS.Timeout | undefined;
        const stuck = new Promise<'stuck'>((resolve) => (stuckTimer = setTimeout(() => resolve('stuck'), 10_000)));
        if ((await Promise.race([all, stuck])) === 'stuck') {
          this.options.logger.error('jobs did not stop within 10 s of being aborted; shutting down without them');
        }
        clearTimeout(stuckTimer);
      }
      clearTimeout(timer);
    })();
    return this.closing;
  }
}

import { recordAuditEvent } from '../audit/audit-repository.js';
import { ContinuousJob, type ContinuousState } from '../backup/continuous/continuous-job.js';
import { isContinuousJob, type KvdrConfig } from '../config/schema.js';
import type { Manifest } from '../repository/manifest.js';
import type { Logger } from '../util/logger.js';
import type { Leadership } from './leadership.js';

/**
 * Runs the continuous jobs on the replica that leads, and only there: exactly one writer per chain.
 * A replica that loses the lead stops its jobs at once (a late segment of a deposed leader is refused
 * by the write-once key anyway); one that gains it resumes each chain from the repository.
 */
export class ContinuousSupervisor {
  private readonly jobs = new Map<string, ContinuousJob>();
  /** Jobs still stopping: a job starts again only once its previous run has finished with the spool. */
  private stopping: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly config: KvdrConfig,
    private readonly logger: Logger,
    private readonly leadership: Leadership,
    private readonly options: { now?: () => number; retryMs?: number } = {},
  ) {}

  start(): void {
    this.leadership.onChange((leader) => void (leader ? this.stopping.then(() => this.startAll()) : this.stopAll()));
    if (this.leadership.isLeader()) this.startAll();
  }

  /** A new base for a job this replica follows; undefined when it follows none by that name. */
  async rebase(job: string): Promise<Manifest | undefined> {
    return this.jobs.get(job)?.rebase();
  }

  following(job: string): boolean {
    return this.jobs.has(job);
  }

  states(): ContinuousState[] {
    return [...this.jobs.values()].map((job) => job.state());
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stopAll();
  }

  private startAll(): void {
    if (this.closed) return;
    for (const job of this.config.jobs.filter(isContinuousJob)) {
      if (this.jobs.has(job.name)) continue;
      const runner = new ContinuousJob({
        config: this.config,
        job,
        logger: this.logger,
        record: async (type, subject) => void (await recordAuditEvent(this.config, type, subject, this.logger)),
        ...this.options,
      });
      this.jobs.set(job.name, runner);
      runner.start();
      this.logger.info(`${job.name}: following ${job.source} continuously`);
    }
  }

  private async stopAll(): Promise<void> {
    const running = [...this.jobs.values()];
    this.jobs.clear();
    const stopped = Promise.allSettled(running.map((job) => job.stop()));
    this.stopping = stopped;
    const results = await stopped;
    for (const [i, result] of results.entries()) {
      if (result.status === 'rejected') this.logger.warn(`${running[i]?.name}: stopping failed: ${String(result.reason)}`);
    }
  }
}

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isBackupJob, type JobConfig, type KvdrConfig, type RepositoryConfig } from '../config/schema.js';
import { MANIFESTS } from '../repository/layout.js';
import { openStore } from '../repository/open-store.js';

/** A job kind whose newest backup is held to an RPO (the audit's LAST_RECOVERY_POINT): PX dumps are not. */
export function hasRpo(job: JobConfig): boolean {
  return isBackupJob(job) && job.kind !== 'px-dumps';
}

/**
 * A prefix that no object can have (job names never start with a dot), under the manifests the catalog
 * lists: listing it makes the request the catalog makes — same endpoint, credentials and bucket, and it
 * fails the same way on a missing bucket or a refused key — but its answer is empty, whatever the size
 * of the repository.
 */
const PROBE_PREFIX = `${MANIFESTS}.kvdr-probe`;

export interface RepositoryProbeOptions {
  /** @defaultValue 30000 */
  intervalMs?: number;
  /** A listing that has not answered by then counts as unreachable. @defaultValue 10000 */
  timeoutMs?: number;
}

/** The service's Prometheus metrics, in a registry of their own. */
export class ServiceMetrics {
  readonly registry = new Registry();
  private jobs: () => readonly { job: string; lastSuccess?: string }[] = () => [];
  private role: () => 'single' | 'leader' | 'follower' = () => 'single';
  private probes: NodeJS.Timeout[] = [];
  // Read from the scheduler's status at each scrape: it knows the last success from the catalog as soon as
  // the service starts, on every replica, not only after a run in this process.
  readonly lastSuccess = new Gauge({
    name: 'kvdr_backup_last_success_timestamp_seconds',
    help: 'Unix time of the last successful run of a job',
    labelNames: ['job'],
    registers: [this.registry],
    collect: () => {
      for (const { job, lastSuccess } of this.jobs()) if (lastSuccess !== undefined) this.lastSuccess.set({ job }, Date.parse(lastSuccess) / 1000);
    },
  });
  readonly duration = new Histogram({
    name: 'kvdr_backup_duration_seconds',
    help: 'Duration of job runs, successful or not',
    labelNames: ['job', 'outcome'],
    buckets: [1, 5, 15, 60, 300, 900, 3600],
    registers: [this.registry],
  });
  readonly bytes = new Gauge({ name: 'kvdr_backup_bytes', help: 'Bytes stored by the last successful backup of a job', labelNames: ['job'], registers: [this.registry] });
  readonly failures = new Counter({ name: 'kvdr_backup_failures_total', help: 'Failed job runs (after retries), of every kind: backups, drills, verify runs', labelNames: ['job'], registers: [this.registry] });
  readonly running = new Gauge({ name: 'kvdr_job_running', help: '1 while a job runs', labelNames: ['job'], registers: [this.registry] });
  readonly pruneFailures = new Counter({ name: 'kvdr_prune_failures_total', help: 'Retention runs after a successful job that failed', labelNames: ['job'], registers: [this.registry] });
  /** Since the last success seen by this process: a restart starts again from 0 (its catch-up run tells soon). */
  readonly consecutiveFailures = new Gauge({
    name: 'kvdr_job_consecutive_failures',
    help: 'Failed runs of a job (each after its retries) since its last successful run in this process',
    labelNames: ['job'],
    registers: [this.registry],
  });
  readonly leader: Gauge = new Gauge({
    name: 'kvdr_leader',
    help: '1 when this replica schedules the jobs (elected leader, or the only replica), 0 when it is a follower',
    registers: [this.registry],
    collect: () => this.leader.set(this.role() === 'follower' ? 0 : 1),
  });
  readonly rpo = new Gauge({
    name: 'kvdr_job_rpo_seconds',
    help: "A backup job's recovery point objective (rpoMinutes, else audit.rpoMinutes); absent for PX dumps, drills and verify jobs",
    labelNames: ['job'],
    registers: [this.registry],
  });
  readonly jobInfo = new Gauge({
    name: 'kvdr_job_info',
    help: 'Always 1: a configured job, its kind, and the source and repository it uses (empty where it has none)',
    labelNames: ['job', 'kind', 'source', 'repository'],
    registers: [this.registry],
  });
  readonly repositoryUp = new Gauge({
    name: 'kvdr_repository_up',
    help: 'Whether the last probe of a repository (an empty listing under manifests/) answered in time',
    labelNames: ['repository'],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'kvdr_' });
  }

  /** Where the last successes come from (the scheduler's status). */
  watchJobs(jobs: () => readonly { job: string; lastSuccess?: string }[]): void {
    this.jobs = jobs;
  }

  /**
   * What the alerts join on: every configured job's kind and RPO, its failure counters at 0 (so that
   * `increase()` sees the first failure), and this replica's role.
   */
  describeService(config: KvdrConfig, role: () => 'single' | 'leader' | 'follower'): void {
    this.role = role;
    for (const job of config.jobs) {
      this.jobInfo.set({ job: job.name, kind: job.kind, source: job.source ?? '', repository: job.repository ?? '' }, 1);
      if (hasRpo(job)) this.rpo.set({ job: job.name }, (job.rpoMinutes ?? config.audit.rpoMinutes) * 60);
      this.failures.inc({ job: job.name }, 0);
      this.consecutiveFailures.set({ job: job.name }, 0);
      if (isBackupJob(job)) this.pruneFailures.inc({ job: job.name }, 0);
    }
  }

  /**
   * Probes each repository now and then every intervalMs, in the background: a scrape only reads the
   * last result, so a repository that hangs never makes /metrics hang (nor `up` drop with it).
   * Resolves once the first probe of each has finished.
   */
  async probeRepositories(repositories: readonly RepositoryConfig[], options: RepositoryProbeOptions = {}): Promise<void> {
    const intervalMs = options.intervalMs ?? 30_000;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const first = repositories.map(async (repository) => {
      let probing = false;
      const probe = async (): Promise<void> => {
        if (probing) return; // the previous probe is still waiting for its timeout
        probing = true;
        try {
          this.repositoryUp.set({ repository: repository.name }, (await listsInTime(repository, timeoutMs)) ? 1 : 0);
        } finally {
          probing = false;
        }
      };
      this.probes.push(setInterval(() => void probe(), intervalMs).unref());
      await probe();
    });
    await Promise.all(first);
  }

  /** Stops the repository probes. */
  close(): void {
    for (const timer of this.probes) clearInterval(timer);
    this.probes = [];
  }

  recordRun(job: string, ok: boolean, seconds: number, bytes?: number): void {
    this.duration.observe({ job, outcome: ok ? 'success' : 'failure' }, seconds);
    if (ok) {
      if (bytes !== undefined) this.bytes.set({ job }, bytes);
      this.consecutiveFailures.set({ job }, 0);
    } else {
      this.failures.inc({ job });
      this.consecutiveFailures.inc({ job });
    }
  }
}

/** True when an (empty) listing of the repository answered within timeoutMs; false on any error or silence. */
async function listsInTime(repository: RepositoryConfig, timeoutMs: number): Promise<boolean> {
  const store = openStore(repository);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  const listing = (async () => {
    for await (const object of store.list(PROBE_PREFIX)) void object;
    return true;
  })().catch(() => false);
  try {
    return await Promise.race([listing, deadline]);
  } finally {
    clearTimeout(timer);
    // A store abandoned at the deadline closes in the background; the probe does not wait for it.
    void store.close().catch(() => undefined);
  }
}

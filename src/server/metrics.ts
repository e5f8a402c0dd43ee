import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The service's Prometheus metrics, in a registry of their own. */
export class ServiceMetrics {
  readonly registry = new Registry();
  private jobs: () => readonly { job: string; lastSuccess?: string }[] = () => [];
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
  readonly failures = new Counter({ name: 'kvdr_backup_failures_total', help: 'Failed job runs (after retries)', labelNames: ['job'], registers: [this.registry] });
  readonly running = new Gauge({ name: 'kvdr_job_running', help: '1 while a job runs', labelNames: ['job'], registers: [this.registry] });
  readonly pruneFailures = new Counter({ name: 'kvdr_prune_failures_total', help: 'Retention runs after a successful job that failed', labelNames: ['job'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'kvdr_' });
  }

  /** Where the last successes come from (the scheduler's status). */
  watchJobs(jobs: () => readonly { job: string; lastSuccess?: string }[]): void {
    this.jobs = jobs;
  }

  recordRun(job: string, ok: boolean, seconds: number, bytes?: number): void {
    this.duration.observe({ job, outcome: ok ? 'success' : 'failure' }, seconds);
    if (ok) {
      if (bytes !== undefined) this.bytes.set({ job }, bytes);
    } else {
      this.failures.inc({ job });
    }
  }
}

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The service's Prometheus metrics, in a registry of their own. */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly lastSuccess = new Gauge({ name: 'kvdr_backup_last_success_timestamp_seconds', help: 'Unix time of the last successful run of a job', labelNames: ['job'], registers: [this.registry] });
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

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'kvdr_' });
  }

  recordRun(job: string, ok: boolean, seconds: number, bytes?: number): void {
    this.duration.observe({ job, outcome: ok ? 'success' : 'failure' }, seconds);
    if (ok) {
      this.lastSuccess.set({ job }, Date.now() / 1000);
      if (bytes !== undefined) this.bytes.set({ job }, bytes);
    } else {
      this.failures.inc({ job });
    }
  }
}

import { Counter, Gauge, type Registry } from 'prom-client';
import type { ContinuousState } from '../backup/continuous/state.js';

/**
 * The continuous jobs' metrics, read from their state at each scrape (only the replica that follows a
 * job reports it). Counters carry what this process has done since it started, as counters do.
 */
export function registerContinuousMetrics(registry: Registry, states: () => readonly ContinuousState[]): void {
  const gauge = (name: string, help: string, value: (s: ContinuousState) => number | undefined): void => {
    const metric: Gauge = new Gauge({
      name,
      help,
      labelNames: ['job'],
      registers: [registry],
      collect: () => {
        metric.reset();
        for (const state of states()) {
          const v = value(state);
          if (v !== undefined) metric.set({ job: state.job }, v);
        }
      },
    });
  };
  const counter = (name: string, help: string, value: (s: ContinuousState) => number): void => {
    // What each job's run had reported; a new run (a restart, a new leader term) counts from zero again.
    const reported = new Map<string, { epoch: number; total: number }>();
    const metric: Counter = new Counter({
      name,
      help,
      labelNames: ['job'],
      registers: [registry],
      collect: () => {
        for (const state of states()) {
          const total = value(state);
          const seen = reported.get(state.job);
          const delta = seen && seen.epoch === state.epoch ? total - seen.total : total;
          if (delta > 0) metric.inc({ job: state.job }, delta);
          reported.set(state.job, { epoch: state.epoch, total });
        }
      },
    });
  };
  gauge('kvdr_continuous_durable_revision', 'Last etcd revision (Consul index) whose changes are all in the repository', (s) => s.durableRevision);
  gauge('kvdr_continuous_received_revision', 'Last revision (index) received from the source', (s) => s.receivedRevision);
  gauge('kvdr_continuous_lag_seconds', 'Age of the oldest change not yet in the repository (0 when everything received is durable)', (s) => s.lagSeconds);
  gauge('kvdr_continuous_durable_timestamp_seconds', 'Unix time up to which every change is in the repository (advances through quiet periods while the source is followed)', (s) => (s.durableAt === undefined ? undefined : s.durableAt / 1000));
  gauge('kvdr_continuous_spool_bytes', 'Bytes of change segments waiting in the local spool for the repository', (s) => s.spoolBytes);
  gauge('kvdr_continuous_following', '1 while the job is connected to its source', (s) => (s.following ? 1 : 0));
  counter('kvdr_continuous_segments_total', 'Change segments written to the repository', (s) => s.segments);
  counter('kvdr_continuous_segment_bytes_total', 'Bytes of change segments written to the repository', (s) => s.segmentBytes);
  counter('kvdr_continuous_gaps_total', 'Continuity gaps recorded (compaction, repository outage longer than the spool)', (s) => s.gaps);
}

import type { JobConfig } from '../config/schema.js';
import type { Manifest } from '../repository/manifest.js';
import type { AuditEvent } from './audit-log.js';
import type { AuditInputs } from './audit-inputs.js';

/** A backup known from its manifest, its trail event, or both. */
export interface BackupRecord {
  id: string;
  startedAt: string;
  finishedAt: string;
  /** The cron slot it ran for, when scheduled. */
  slot?: string;
  /** The manifest, while the repository holds the backup. */
  held?: Manifest;
  /** The trail's record of it being taken. */
  event?: AuditEvent;
}

/** One job's whole history, oldest first: what it took, what failed, what is still held. */
export interface JobHistory {
  job: JobConfig;
  backups: BackupRecord[];
  failures: AuditEvent[];
  drills: AuditEvent[];
  /** The earliest evidence of the job running at all. */
  firstSeen: Date | undefined;
}

/** Backup jobs and drills; a verify job's evidence is the verify events the INTEGRITY control reads. */
export function jobHistories(inputs: AuditInputs): JobHistory[] {
  return inputs.config.jobs.filter((job) => job.kind !== 'verify').map((job) => {
    const byId = new Map<string, BackupRecord>();
    for (const event of inputs.events) {
      if (event.type !== 'backup' || event.subject['job'] !== job.name) continue;
      const id = String(event.subject['backup']);
      byId.set(id, { id, startedAt: str(event.subject['startedAt']) ?? event.time, finishedAt: str(event.subject['finishedAt']) ?? event.time, ...slotOf(event.subject), event });
    }
    for (const m of inputs.manifests) {
      if (m.job !== job.name) continue;
      byId.set(m.id, { ...byId.get(m.id), id: m.id, startedAt: m.startedAt, finishedAt: m.finishedAt, ...slotOf(m.details), held: m });
    }
    const backups = [...byId.values()].sort((a, b) => a.finishedAt.localeCompare(b.finishedAt) || a.id.localeCompare(b.id));
    const failures = inputs.events.filter((e) => e.type === 'backup-failed' && e.subject['job'] === job.name);
    const drills = inputs.events.filter((e) => e.type === 'drill' && (e.subject['drill'] === job.name || e.subject['testedJob'] === job.name));
    const times = [...backups.map((b) => b.startedAt), ...failures.map((f) => str(f.subject['startedAt']) ?? f.time)].sort();
    return { job, backups, failures, drills, firstSeen: times[0] ? new Date(times[0]) : undefined };
  });
}

/** Whether an ISO time falls in the audited period. */
export function inPeriod(inputs: Pick<AuditInputs, 'since' | 'until'>, time: string): boolean {
  const t = Date.parse(time);
  return t >= inputs.since.getTime() && t <= inputs.until.getTime();
}

export function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function slotOf(details: Record<string, unknown>): { slot?: string } {
  const slot = str(details['slot']);
  return slot ? { slot } : {};
}

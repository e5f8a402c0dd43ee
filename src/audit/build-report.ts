import { isBackupJob, isContinuousJob, type KvdrConfig } from '../config/schema.js';
import { chainsOf, continuity } from './controls/continuity-controls.js';
import { VERSION } from '../util/version.js';
import type { AuditEvent } from './audit-log.js';
import { gatherAuditInputs, type AuditInputs } from './audit-inputs.js';
import { minRetention, retentionDepth, earlyDeletion } from './controls/retention-controls.js';
import { crossRegion, encrypted, immutability, integrity } from './controls/protection-controls.js';
import { restoreGovernance, restoreTested, restoreTime, trailIntegrity } from './controls/restore-controls.js';
import { coverage, frequency, jobHealth, lastRecoveryPoint, missedSlots } from './controls/schedule-controls.js';
import { inPeriod, jobHistories, str, type JobHistory } from './job-history.js';
import { CONTROL_IDS, type AuditReport, type BackupJobRow, type ControlResult, type JobTimeline, type RestoreJobRow } from './report/audit-report.js';

const PER_BACKUP_JOB = [frequency, lastRecoveryPoint, jobHealth, minRetention, retentionDepth, earlyDeletion, encrypted, integrity, crossRegion, immutability, restoreTested, restoreTime];

/** Reads the evidence and judges it: the whole `kvdr audit` except rendering. */
export async function buildAuditReport(config: KvdrConfig, since: Date, until: Date): Promise<AuditReport> {
  return judge(await gatherAuditInputs(config, since, until));
}

export function judge(inputs: AuditInputs): AuditReport {
  const histories = jobHistories(inputs);
  const backupJobs = histories.filter((h) => isBackupJob(h.job));
  const controls: ControlResult[] = [
    ...coverage(inputs, histories),
    ...backupJobs.flatMap((h) => PER_BACKUP_JOB.map((control) => control(inputs, h))),
    ...backupJobs.filter((h) => isContinuousJob(h.job)).map((h) => continuity(inputs, h)),
    restoreGovernance(inputs),
    trailIntegrity(inputs),
  ].sort((a, b) => CONTROL_IDS.indexOf(a.control) - CONTROL_IDS.indexOf(b.control));
  return {
    generatedAt: new Date().toISOString(),
    period: { since: inputs.since.toISOString(), until: inputs.until.toISOString() },
    tool: `kvdr ${VERSION}`,
    trail: { location: inputs.trail.location, events: inputs.trail.events, head: inputs.trail.head, intact: inputs.trail.broken === undefined },
    controls,
    timelines: histories.map((h) => timeline(inputs, h)),
    backupJobs: backupJobRows(inputs, backupJobs),
    restoreJobs: restoreJobRows(inputs),
    passed: controls.every((c) => c.status !== 'FAIL'),
  };
}

function timeline(inputs: AuditInputs, history: JobHistory): JobTimeline {
  const { job } = history;
  const entries: JobTimeline['entries'] =
    job.kind === 'restore-test'
      ? history.drills.filter((d) => d.subject['drill'] === job.name && inPeriod(inputs, d.time)).map((d) => ({ time: d.time, outcome: d.subject['result'] === 'ok' ? 'success' : 'failure', detail: drillText(d), ref: str(d.subject['backup']) ?? '' }))
      : [
          ...history.backups.filter((b) => inPeriod(inputs, b.finishedAt)).map((b) => ({ time: b.finishedAt, outcome: 'success' as const, detail: `backup ${b.id}${b.held ? '' : ' (no longer held)'}`, ref: b.id })),
          ...history.failures.filter((f) => inPeriod(inputs, f.time)).map((f) => ({ time: f.time, outcome: 'failure' as const, detail: str(f.subject['error']) ?? 'failed' })),
          ...(job.kind === 'px-dumps' || !history.firstSeen ? [] : missedSlots(inputs, history)).map((slot) => ({ time: slot.toISOString(), outcome: 'missed' as const, detail: 'missed slot: no backup' })),
          ...inputs.events
            .filter((e) => e.type === 'continuity-gap' && e.subject['job'] === job.name && inPeriod(inputs, e.time))
            .map((e) => ({ time: e.time, outcome: 'gap' as const, detail: `continuity gap, revisions ${String(e.subject['fromRevision'])}..${String(e.subject['toRevision'])}: ${str(e.subject['cause']) ?? ''}` })),
        ];
  const coverage = isContinuousJob(job) ? chainsOf(inputs, job.name).map((c) => ({ from: c.from, to: c.to, ref: c.base })) : undefined;
  return { job: job.name, kind: job.kind, schedule: job.schedule, entries: entries.sort((a, b) => a.time.localeCompare(b.time)), ...(coverage ? { coverage } : {}) };
}

function drillText(event: AuditEvent): string {
  return event.subject['result'] === 'ok'
    ? `drill restored ${String(event.subject['records'])} keys of ${String(event.subject['backup'])} in ${(Number(event.subject['rtoMs']) / 1000).toFixed(1)} s`
    : `drill failed: ${String(event.subject['error'])}`;
}

function backupJobRows(inputs: AuditInputs, histories: readonly JobHistory[]): BackupJobRow[] {
  const rows: BackupJobRow[] = [];
  for (const { job, backups, failures } of histories) {
    const repository = inputs.config.repositories.find((r) => r.name === job.repository);
    const region = repository?.type === 's3' ? repository.region : '';
    const base = { resourceType: job.kind, resourceId: job.source ?? '', backupPlan: job.name, backupVaultName: job.repository ?? '', region };
    for (const b of backups.filter((x) => inPeriod(inputs, x.finishedAt))) {
      rows.push({
        ...base,
        backupJobId: b.event?.id ?? b.id,
        jobStatus: 'COMPLETED',
        statusMessage: b.held ? '' : 'deleted since',
        creationDate: b.startedAt,
        completionDate: b.finishedAt,
        recoveryPointId: b.id,
        jobRunTimeSeconds: Math.round((Date.parse(b.finishedAt) - Date.parse(b.startedAt)) / 1000),
        backupSizeInBytes: b.held?.bytes.stored ?? Number(b.event?.subject['bytes'] ?? 0),
      });
    }
    for (const f of failures.filter((x) => inPeriod(inputs, x.time))) {
      const started = str(f.subject['startedAt']) ?? f.time;
      rows.push({ ...base, backupJobId: f.id, jobStatus: 'FAILED', statusMessage: str(f.subject['error']) ?? '', creationDate: started, completionDate: f.time, recoveryPointId: '', jobRunTimeSeconds: Math.round((Date.parse(f.time) - Date.parse(started)) / 1000), backupSizeInBytes: 0 });
    }
  }
  return rows.sort((a, b) => a.creationDate.localeCompare(b.creationDate));
}

const RESTORE_STATUS: Partial<Record<AuditEvent['type'], RestoreJobRow['jobStatus']>> = {
  restore: 'COMPLETED',
  'restore-failed': 'FAILED',
  'restore-rolled-back': 'FAILED',
  'restore-aborted': 'ABORTED',
  'restore-dry-run': 'DRY_RUN',
};

function restoreJobRows(inputs: AuditInputs): RestoreJobRow[] {
  return inputs.events
    .filter((e) => inPeriod(inputs, e.time) && (e.type === 'drill' || RESTORE_STATUS[e.type] !== undefined))
    .map((e) => {
      const drill = e.type === 'drill';
      const status = drill ? (e.subject['result'] === 'ok' ? 'COMPLETED' : 'FAILED') : (RESTORE_STATUS[e.type] as RestoreJobRow['jobStatus']);
      const ms = Number(e.subject[drill ? (e.subject['result'] === 'ok' ? 'rtoMs' : 'durationMs') : 'durationMs']);
      return {
        restoreJobId: e.id,
        jobStatus: status,
        statusMessage: str(e.subject['error']) ?? (e.type === 'restore-aborted' ? `${String(e.subject['existing'])} keys already in scope` : ''),
        restoreType: drill ? 'drill' : 'restore',
        recoveryPointId: str(e.subject['backup']) ?? str(e.subject['file']) ?? '',
        createdResource: `${String(e.subject['target'])} ${str(e.subject['scope']) ?? ''}`.trim(),
        creationDate: e.time,
        jobRunTimeSeconds: Number.isFinite(ms) ? Math.round(ms / 1000) : undefined,
        force: e.subject['force'] === true,
        safetyBackupId: str(e.subject['safetyBackupId']) ?? '',
      };
    });
}

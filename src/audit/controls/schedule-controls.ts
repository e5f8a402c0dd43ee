import { isBackupJob } from '../../config/schema.js';
import type { AuditInputs } from '../audit-inputs.js';
import { cronSlots } from '../../scheduler/cron-slots.js';
import { inPeriod, str, type JobHistory } from '../job-history.js';
import type { ControlResult, EvidenceRow } from '../report/audit-report.js';
import { chainsOf } from './continuity-controls.js';
import { ageText, passOrFail, verdict } from './control.js';

/** COVERAGE: every configured source has a backup job that produced a backup in the period. */
export function coverage(inputs: AuditInputs, histories: readonly JobHistory[]): ControlResult[] {
  return inputs.config.sources.map((source) => {
    const subject = { subjectType: 'source' as const, subject: source.name };
    const jobs = histories.filter((h) => h.job.source === source.name && isBackupJob(h.job));
    if (jobs.length === 0) return verdict('COVERAGE', subject, 'FAIL', `no backup job backs up ${source.name}`);
    const evidence = jobs.map((h) => ({ ref: h.job.name, detail: `${h.job.kind}: ${h.backups.filter((b) => inPeriod(inputs, b.finishedAt)).length} backups in the period` }));
    const covered = jobs.filter((h) => h.backups.some((b) => inPeriod(inputs, b.finishedAt)));
    return covered.length > 0
      ? verdict('COVERAGE', subject, 'PASS', `backed up in the period by ${covered.map((h) => h.job.name).join(', ')}`, evidence)
      : verdict('COVERAGE', subject, 'FAIL', `${jobs.length} jobs configured, none produced a backup in the period`, evidence);
  });
}

/**
 * The cron slots in the period that no successful backup answered. A slot counts from when the job
 * first ran (a job added mid-period is not blamed for earlier slots) until its run had time to finish.
 * A slot is answered by a backup made for it, or by any backup started before the next slot.
 */
export function missedSlots(inputs: AuditInputs, history: JobHistory): Date[] {
  const { job } = history;
  const from = new Date(Math.max(inputs.since.getTime(), floorToMinute(history.firstSeen ?? inputs.until).getTime()));
  const to = new Date(inputs.until.getTime() - job.timeoutMinutes * 60_000);
  if (to < from) return [];
  const slots = cronSlots(job.schedule, job.timezone, from, to);
  const next = cronSlots(job.schedule, job.timezone, new Date(to.getTime() + 1000), inputs.until, 1)[0];
  const answered = new Set(history.backups.flatMap((b) => (b.slot ? [b.slot] : [])));
  const starts = history.backups.map((b) => Date.parse(b.startedAt)).sort((a, b) => a - b);
  return slots.filter((slot, i) => {
    if (answered.has(slot.toISOString())) return false;
    const end = (slots[i + 1] ?? next ?? inputs.until).getTime();
    const first = starts[firstAtOrAfter(starts, slot.getTime())];
    return first === undefined || first >= end;
  });
}

/** Index of the first value >= t in an ascending array (its length if none): slots × backups stays cheap. */
function firstAtOrAfter(sorted: readonly number[], t: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as number) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** FREQUENCY: no cron slot of the period went without a backup. */
export function frequency(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  if (history.job.kind === 'px-dumps') return verdict('FREQUENCY', subject, 'N/A', 'PX dumps are written when a node loses its KVDB, not on a schedule');
  if (!history.firstSeen) return verdict('FREQUENCY', subject, 'FAIL', `the job never ran (schedule "${history.job.schedule}")`);
  const missed = missedSlots(inputs, history);
  const evidence: EvidenceRow[] = missed.map((slot) => ({ time: slot.toISOString(), detail: 'no backup for this slot' }));
  return verdict(
    'FREQUENCY',
    subject,
    passOrFail(missed.length === 0),
    missed.length === 0 ? `every slot of "${history.job.schedule}" (${history.job.timezone}) in the period has a backup` : `${missed.length} slots of "${history.job.schedule}" missed`,
    evidence,
  );
}

/** LAST_RECOVERY_POINT: at the end of the period, the newest held backup is within the job's RPO. */
export function lastRecoveryPoint(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  if (history.job.kind === 'px-dumps') return verdict('LAST_RECOVERY_POINT', subject, 'N/A', 'PX dumps are written when a node loses its KVDB, not on a schedule');
  const rpoMinutes = history.job.rpoMinutes ?? inputs.config.audit.rpoMinutes;
  // A continuous job's recovery point is its newest durable change (its newest segment), not its newest base.
  const durable = chainsOf(inputs, history.job.name).filter((c) => Date.parse(c.from) <= inputs.until.getTime()).map((c) => ({ id: c.base, finishedAt: c.to <= inputs.until.toISOString() ? c.to : inputs.until.toISOString(), held: true })).sort((a, b) => a.finishedAt.localeCompare(b.finishedAt)).at(-1);
  const newest = durable ?? history.backups.filter((b) => b.held && Date.parse(b.finishedAt) <= inputs.until.getTime()).at(-1);
  if (!newest) return verdict('LAST_RECOVERY_POINT', subject, 'FAIL', 'no backup is held: there is nothing to recover to');
  const age = inputs.until.getTime() - Date.parse(newest.finishedAt);
  return verdict(
    'LAST_RECOVERY_POINT',
    subject,
    passOrFail(age <= rpoMinutes * 60_000),
    `newest recovery point is ${ageText(age)} old (RPO ${rpoMinutes} min)`,
    [{ time: newest.finishedAt, ref: newest.id, detail: durable ? 'newest durable change of the newest chain' : 'newest held backup' }],
  );
}

/**
 * JOB_HEALTH: no run failed for good in the period. A failure that a retry or the next manual run
 * made good before the job's next slot is evidence, not a failure.
 */
export function jobHealth(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const failures = history.failures.filter((f) => inPeriod(inputs, f.time));
  const rows: EvidenceRow[] = [];
  let unrecovered = 0;
  for (const failure of failures) {
    const at = Date.parse(failure.time);
    const deadline = cronSlots(history.job.schedule, history.job.timezone, new Date(at + 1000), new Date(at + 366 * 86_400_000), 1)[0]?.getTime() ?? Infinity;
    const recovered = history.backups.find((b) => Date.parse(b.finishedAt) >= at && Date.parse(b.startedAt) < deadline);
    if (!recovered) unrecovered++;
    rows.push({ time: failure.time, ref: str(failure.subject['slot']) ?? 'manual', detail: `${str(failure.subject['error']) ?? 'failed'}${recovered ? ` (made good by ${recovered.id})` : ''}` });
  }
  const runs = history.backups.filter((b) => inPeriod(inputs, b.finishedAt)).length + failures.length;
  return verdict(
    'JOB_HEALTH',
    subject,
    passOrFail(unrecovered === 0),
    unrecovered === 0 ? `${runs} runs in the period, ${failures.length} failed attempts all made good` : `${unrecovered} failed runs not made good before the next slot (${runs} runs in the period)`,
    rows,
  );
}

function floorToMinute(date: Date): Date {
  return new Date(Math.floor(date.getTime() / 60_000) * 60_000);
}

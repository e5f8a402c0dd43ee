import type { AuditInputs } from '../audit-inputs.js';
import { inPeriod, str, type JobHistory } from '../job-history.js';
import type { ControlResult, EvidenceRow } from '../report/audit-report.js';
import { ageText, passOrFail, verdict } from './control.js';

const DAY = 86_400_000;

/** RESTORE_TESTED: a restore drill of this job's backups passed within `audit.restoreTestMaxAgeDays`. */
export function restoreTested(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const maxAge = inputs.config.audit.restoreTestMaxAgeDays;
  const drills = testedBy(inputs, history);
  const rows: EvidenceRow[] = drills.filter((d) => inPeriod(inputs, d.time)).map((d) => ({ time: d.time, ref: str(d.subject['backup']) ?? '?', detail: `drill ${String(d.subject['drill'])}: ${String(d.subject['result'])}${str(d.subject['error']) ? `: ${str(d.subject['error']) ?? ''}` : ''}` }));
  const configured = inputs.config.jobs.filter((j) => j.drill?.job === history.job.name).map((j) => j.name);
  const lastOk = drills.filter((d) => d.subject['result'] === 'ok').at(-1);
  if (!lastOk) {
    return verdict('RESTORE_TESTED', subject, 'FAIL', configured.length ? `drills ${configured.join(', ')} never restored it successfully` : 'no restore-test job drills this job', rows);
  }
  const age = inputs.until.getTime() - Date.parse(lastOk.time);
  return verdict('RESTORE_TESTED', subject, passOrFail(age <= maxAge * DAY), `last successful drill ${ageText(age)} ago (at most ${maxAge} days)`, rows);
}

/** RESTORE_TIME: the newest successful drill restored within `audit.rtoMinutes` (the RTO evidence). */
export function restoreTime(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const rto = inputs.config.audit.rtoMinutes;
  const lastOk = testedBy(inputs, history).filter((d) => d.subject['result'] === 'ok').at(-1);
  if (!lastOk) return verdict('RESTORE_TIME', subject, 'N/A', 'no successful drill to time (see RESTORE_TESTED)');
  const ms = Number(lastOk.subject['rtoMs']);
  return verdict('RESTORE_TIME', subject, passOrFail(ms <= rto * 60_000), `newest drill restored ${String(lastOk.subject['records'])} keys in ${(ms / 1000).toFixed(1)} s (RTO ${rto} min)`, [
    { time: lastOk.time, ref: str(lastOk.subject['backup']) ?? '?', detail: `fetch ${(Number(lastOk.subject['fetchMs']) / 1000).toFixed(1)} s, restored and verified at ${(ms / 1000).toFixed(1)} s` },
  ]);
}

/** RESTORE_GOVERNANCE: every restore of the period that replaced keys (--force) took its safety backup first. */
export function restoreGovernance(inputs: AuditInputs): ControlResult {
  const subject = { subjectType: 'trail' as const, subject: 'restores' };
  const forced = inputs.events.filter((e) => (e.type === 'restore' || e.type === 'restore-failed' || e.type === 'restore-rolled-back') && e.subject['force'] === true && inPeriod(inputs, e.time));
  const replacing = forced.filter((e) => Number(e.subject['deleted'] ?? e.subject['replaced'] ?? 0) > 0);
  const held = new Set(inputs.manifests.map((m) => m.id));
  const rows: EvidenceRow[] = replacing.map((e) => {
    const safety = str(e.subject['safetyBackupId']);
    const detail = !safety ? 'replaced keys with no safety backup (--no-safety-backup)' : held.has(safety) ? `safety backup ${safety} held` : `safety backup ${safety} is no longer in the repository`;
    return { time: e.time, ref: `${String(e.subject['target'])} ${String(e.subject['scope'])}`, detail };
  });
  const bad = rows.filter((r) => !r.detail.endsWith(' held'));
  return verdict(
    'RESTORE_GOVERNANCE',
    subject,
    passOrFail(bad.length === 0),
    bad.length === 0 ? `${forced.length} forced restores in the period, each replaced scope saved first` : `${bad.length} forced restores replaced keys without a safety backup`,
    rows,
  );
}

/** TRAIL_INTEGRITY: the audit trail's hash chain is unbroken. */
export function trailIntegrity(inputs: AuditInputs): ControlResult {
  const subject = { subjectType: 'trail' as const, subject: inputs.trail.location };
  const { broken, events, head } = inputs.trail;
  return broken
    ? verdict('TRAIL_INTEGRITY', subject, 'FAIL', `first broken link at ${broken.key}: ${broken.reason}`, [{ ref: broken.key, detail: broken.reason }])
    : verdict('TRAIL_INTEGRITY', subject, 'PASS', `${events} events, hash chain intact`, [{ ref: 'head', detail: `sha256 ${head}` }]);
}

function testedBy(inputs: AuditInputs, history: JobHistory): JobHistory['drills'] {
  return history.drills.filter((d) => d.subject['testedJob'] === history.job.name && Date.parse(d.time) <= inputs.until.getTime());
}

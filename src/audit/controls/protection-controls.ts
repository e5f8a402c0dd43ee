import type { AuditInputs } from '../audit-inputs.js';
import { inPeriod, str, type JobHistory } from '../job-history.js';
import type { ControlResult, EvidenceRow } from '../report/audit-report.js';
import { ageText, passOrFail, verdict } from './control.js';

/** ENCRYPTED: every backup of the period is encrypted at rest (SSE or client-side), as the repository reported. */
export function encrypted(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const recent = history.backups.filter((b) => b.held && inPeriod(inputs, b.finishedAt));
  if (recent.length === 0) return verdict('ENCRYPTED', subject, 'N/A', 'no backup held from the period');
  const plain = recent.filter((b) => !b.held?.encryption.sse && !b.held?.encryption.clientSide);
  const rows: EvidenceRow[] = plain.map((b) => ({ time: b.finishedAt, ref: b.id, detail: `stored unencrypted in ${b.held?.repository.location ?? '?'}` }));
  const modes = [...new Set(recent.flatMap((b) => (b.held?.encryption.sse ? [b.held.encryption.sse.mode] : [])))];
  return verdict(
    'ENCRYPTED',
    subject,
    passOrFail(plain.length === 0),
    plain.length === 0 ? `all ${recent.length} backups of the period encrypted (${modes.join(', ') || 'client-side'})` : `${plain.length} of ${recent.length} backups of the period are not encrypted`,
    rows,
  );
}

/**
 * INTEGRITY: the job's backups were re-verified recently (`kvdr verify`), and no backup still held
 * failed its last verification.
 */
export function integrity(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const maxAge = inputs.config.audit.verifyMaxAgeDays;
  const verifies = inputs.events.filter((e) => e.type === 'verify' && e.subject['job'] === history.job.name && Date.parse(e.time) <= inputs.until.getTime());
  const lastPerBackup = new Map(verifies.map((e) => [String(e.subject['backup']), e]));
  const held = new Set(history.backups.filter((b) => b.held).map((b) => b.id));
  const failed = [...lastPerBackup.values()].filter((e) => e.subject['result'] !== 'ok' && held.has(String(e.subject['backup'])));
  const rows: EvidenceRow[] = failed.map((e) => ({ time: e.time, ref: String(e.subject['backup']), detail: `${String(e.subject['result'])}: ${str(e.subject['detail']) ?? ''}` }));
  const last = verifies.at(-1);
  if (!last) return verdict('INTEGRITY', subject, 'FAIL', `no backup of ${history.job.name} was ever verified; run kvdr verify`, rows);
  rows.unshift({ time: last.time, ref: String(last.subject['backup']), detail: `last verification: ${String(last.subject['result'])}` });
  const age = inputs.until.getTime() - Date.parse(last.time);
  const fresh = age <= maxAge * 86_400_000;
  const summary = failed.length > 0 ? `${failed.length} held backups failed verification` : fresh ? `last verified ${ageText(age)} ago, ok` : `last verified ${ageText(age)} ago (more than ${maxAge} days)`;
  return verdict('INTEGRITY', subject, passOrFail(fresh && failed.length === 0), summary, rows);
}

/** CROSS_REGION: backups are kept in another region than the cluster they protect. */
export function crossRegion(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const source = inputs.config.sources.find((s) => s.name === history.job.source);
  const repository = inputs.config.repositories.find((r) => r.name === history.job.repository);
  const rows: EvidenceRow[] = history.backups
    .filter((b) => b.held && inPeriod(inputs, b.finishedAt) && b.held.source.region !== undefined && b.held.source.region === b.held.repository.region)
    .map((b) => ({ time: b.finishedAt, ref: b.id, detail: `stored in ${b.held?.repository.region ?? '?'}, the source's own region` }));
  if (repository?.type !== 's3') return verdict('CROSS_REGION', subject, 'FAIL', `repository ${repository?.name ?? '?'} is a local filesystem, not another region`, rows);
  if (!source?.region) return verdict('CROSS_REGION', subject, 'FAIL', `source ${history.job.source} has no region configured; cannot show the copy is elsewhere`, rows);
  const ok = source.region !== repository.region && rows.length === 0;
  return verdict('CROSS_REGION', subject, passOrFail(ok), `source in ${source.region}, repository ${repository.name} in ${repository.region}`, rows);
}

/** IMMUTABILITY: the repository is versioned with object lock on, and the period's backups carry a retention date. */
export function immutability(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const name = history.job.repository ?? '?';
  const protection = inputs.protection.get(name);
  const unlocked = history.backups.filter((b) => b.held && inPeriod(inputs, b.finishedAt) && !b.held.objectLock);
  const lock = protection?.objectLock;
  const rows: EvidenceRow[] = [
    { ref: name, detail: `versioning: ${protection?.versioning ?? 'unknown'}` },
    { ref: name, detail: `object lock: ${lock?.enabled ? `enabled${lock.mode ? `, default ${lock.mode} ${lock.days ?? 0} days ${lock.years ? `${lock.years} years` : ''}`.trimEnd() : ', no default retention'}` : 'not enabled'}` },
    ...unlocked.map((b) => ({ time: b.finishedAt, ref: b.id, detail: 'stored without a retention date' })),
  ];
  const ok = protection?.versioning === 'Enabled' && lock?.enabled === true && unlocked.length === 0;
  const summary = ok
    ? `${name} is versioned and object-locked; every backup of the period has a retention date`
    : protection?.versioning === 'unsupported'
      ? `${name} is a filesystem: no versioning, no object lock`
      : `${name}: versioning ${protection?.versioning ?? 'unknown'}, object lock ${lock?.enabled ? 'on' : 'off'}, ${unlocked.length} backups of the period without a retention date`;
  return verdict('IMMUTABILITY', subject, passOrFail(ok), summary, rows);
}

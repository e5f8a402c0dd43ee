import { artifactRef, type AuditInputs } from '../audit-inputs.js';
import { str, type JobHistory } from '../job-history.js';
import type { ControlResult, EvidenceRow } from '../report/audit-report.js';
import { ageText, passOrFail, verdict } from './control.js';

const DAY = 86_400_000;

/** MIN_RETENTION: the job keeps every backup at least `audit.minRetentionDays` (its minDays, or its object lock). */
export function minRetention(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const required = inputs.config.audit.minRetentionDays;
  const repository = inputs.config.repositories.find((r) => r.name === history.job.repository);
  const lockDays = repository?.type === 's3' ? (repository.objectLock?.days ?? 0) : 0;
  const kept = Math.max(history.job.retention.minDays, lockDays);
  const evidence: EvidenceRow[] = [
    { detail: `retention.minDays ${history.job.retention.minDays}` },
    { detail: lockDays > 0 ? `object lock ${lockDays} days in ${repository?.name ?? '?'}` : 'no object lock configured' },
  ];
  return verdict('MIN_RETENTION', subject, passOrFail(kept >= required), `every backup is kept at least ${kept} days (required: ${required})`, evidence);
}

/** RETENTION_DEPTH: the repository holds as many backups as the policy promises (keepLast, or all taken so far). */
export function retentionDepth(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const held = history.backups.filter((b) => b.held);
  const expected = Math.min(history.job.retention.keepLast, history.backups.length);
  const oldest = held[0];
  const evidence: EvidenceRow[] = oldest ? [{ time: oldest.finishedAt, ref: oldest.id, detail: `oldest held: ${ageText(inputs.until.getTime() - Date.parse(oldest.finishedAt))} old` }] : [];
  return verdict(
    'RETENTION_DEPTH',
    subject,
    passOrFail(held.length >= expected),
    `${held.length} recovery points held; the policy keeps at least ${expected} (keepLast ${history.job.retention.keepLast}, ${history.backups.length} ever taken)`,
    evidence,
  );
}

/**
 * EARLY_DELETION: no backup disappeared before its retention. Caught three ways: a manifest whose
 * artifact is gone; a backup the trail recorded that the repository no longer lists, with no prune
 * event for it; and a prune event that came before the backup's minDays or object lock ran out.
 */
export function earlyDeletion(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const pruned = new Map(inputs.events.filter((e) => e.type === 'prune' && e.subject['job'] === history.job.name).map((e) => [String(e.subject['backup']), e]));
  const rows: EvidenceRow[] = [];
  for (const backup of history.backups) {
    const manifest = backup.held;
    if (manifest) {
      if (!inputs.artifacts.has(artifactRef(manifest.repository.name, manifest.repository.key))) {
        rows.push({ time: backup.finishedAt, ref: backup.id, detail: `artifact ${manifest.repository.key} was deleted; its manifest remains` });
      }
      continue;
    }
    const prune = pruned.get(backup.id);
    if (!prune) {
      rows.push({ time: backup.finishedAt, ref: backup.id, detail: 'deleted without a prune event: removed outside kvdr' });
      continue;
    }
    const lived = Date.parse(prune.time) - Date.parse(backup.finishedAt);
    const minDays = Number(prune.subject['minDays'] ?? history.job.retention.minDays);
    const retainUntil = str(prune.subject['retainUntil']);
    if (lived < minDays * DAY || (retainUntil !== undefined && Date.parse(prune.time) < Date.parse(retainUntil))) {
      rows.push({ time: prune.time, ref: backup.id, detail: `pruned after ${ageText(lived)}, before its retention (${minDays} days${retainUntil ? `, locked until ${retainUntil}` : ''})` });
    }
  }
  // Not limited to the period: a deletion outside kvdr has no time of its own, and it matters whenever found.
  return verdict(
    'EARLY_DELETION',
    subject,
    passOrFail(rows.length === 0),
    rows.length === 0 ? `no backup was deleted before its retention (${pruned.size} pruned on time)` : `${rows.length} backups deleted before their retention`,
    rows,
  );
}

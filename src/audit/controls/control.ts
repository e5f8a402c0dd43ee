import type { ControlId, ControlResult, ControlStatus, EvidenceRow } from '../report/audit-report.js';

/** A report stays readable: past this many rows a control says how many more there were. */
const MAX_EVIDENCE_ROWS = 200;

export function verdict(
  control: ControlId,
  subject: Pick<ControlResult, 'subjectType' | 'subject'>,
  status: ControlStatus,
  summary: string,
  evidence: EvidenceRow[] = [],
): ControlResult {
  const rows = evidence.length <= MAX_EVIDENCE_ROWS ? evidence : [...evidence.slice(0, MAX_EVIDENCE_ROWS), { detail: `… and ${evidence.length - MAX_EVIDENCE_ROWS} more` }];
  return { control, ...subject, status, summary, evidence: rows };
}

export const passOrFail = (ok: boolean): ControlStatus => (ok ? 'PASS' : 'FAIL');

export function ageText(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 120) return `${minutes} min`;
  const hours = minutes / 60;
  return hours < 48 ? `${hours.toFixed(1)} h` : `${(hours / 24).toFixed(1)} days`;
}

import type { AuditInputs, ChainCoverage } from '../audit-inputs.js';
import { inPeriod, str, type JobHistory } from '../job-history.js';
import type { ControlResult, EvidenceRow } from '../report/audit-report.js';
import { passOrFail, verdict } from './control.js';

/** A continuous job's chains that the repositories hold, oldest first. */
export function chainsOf(inputs: Pick<AuditInputs, 'chains'>, job: string): ChainCoverage[] {
  return inputs.chains.filter((c) => c.job === job).sort((a, b) => a.from.localeCompare(b.from));
}

/**
 * CONTINUITY (continuous jobs): the change log had no gap in the period — every second could be
 * restored — or each gap is listed with the revisions no chain holds and why (compaction, repository
 * outage longer than the spool). The chains held are evidence too.
 */
export function continuity(inputs: AuditInputs, history: JobHistory): ControlResult {
  const subject = { subjectType: 'job' as const, subject: history.job.name };
  const chains = chainsOf(inputs, history.job.name);
  const gaps = inputs.events.filter((e) => e.type === 'continuity-gap' && e.subject['job'] === history.job.name && inPeriod(inputs, e.time));
  const evidence: EvidenceRow[] = [
    ...gaps.map((g) => ({ time: g.time, ref: `revisions ${String(g.subject['fromRevision'])}..${String(g.subject['toRevision'])}`, detail: `gap: ${str(g.subject['cause']) ?? 'cause not recorded'}; new base ${str(g.subject['newBase']) ?? '?'}` })),
    ...chains.map((c) => ({ time: c.from, ref: c.base, detail: `chain: base + ${c.segments} segments, restorable to ${c.to} (${c.repository})` })),
  ];
  if (chains.length === 0) return verdict('CONTINUITY', subject, 'FAIL', 'no chain is held: the job never took a base, or every base is gone', evidence);
  const durable = chains.map((c) => c.to).sort().at(-1) as string;
  return verdict(
    'CONTINUITY',
    subject,
    passOrFail(gaps.length === 0),
    gaps.length === 0
      ? `no gap in the period: ${chains.length} chain(s) held, changes recorded up to ${durable}`
      : `${gaps.length} gap(s) in the period: changes in those revisions cannot be restored to the second`,
    evidence,
  );
}

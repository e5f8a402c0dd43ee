import type { AuditReport, ControlResult } from './audit-report.js';

export const REPORT_KINDS = ['controls', 'backup-jobs', 'restore-jobs'] as const;
export type ReportKind = (typeof REPORT_KINDS)[number];

const COMPLIANCE = { PASS: 'COMPLIANT', FAIL: 'NON_COMPLIANT', 'N/A': 'NOT_APPLICABLE' } as const;

/**
 * The three tabular reports, with the columns of AWS Backup Audit Manager's CONTROL_COMPLIANCE,
 * BACKUP_JOB and RESTORE_JOB reports where kvdr has the same fact, so existing tooling can take them.
 */
export function reportTable(report: AuditReport, kind: ReportKind): { header: string[]; rows: (string | number)[][] } {
  const period = [report.period.since, report.period.until];
  switch (kind) {
    case 'controls':
      return {
        header: ['Report Time Period Start', 'Report Time Period End', 'Framework Name', 'Control Name', 'Control Compliance Status', 'Resource Type', 'Resource Id', 'Summary', 'Evidence Rows', 'Evaluation Time'],
        rows: report.controls.map((c) => [...period, 'kvdr', c.control, COMPLIANCE[c.status], c.subjectType, c.subject, c.summary, c.evidence.length, report.generatedAt]),
      };
    case 'backup-jobs':
      return {
        header: ['Report Time Period Start', 'Report Time Period End', 'Region', 'Backup Job Id', 'Job Status', 'Status Message', 'Resource Type', 'Resource Id', 'Backup Plan', 'Creation Date', 'Completion Date', 'Recovery Point Id', 'Job Run Time', 'Backup Size in Bytes', 'Backup Vault Name'],
        rows: report.backupJobs.map((r) => [...period, r.region, r.backupJobId, r.jobStatus, r.statusMessage, r.resourceType, r.resourceId, r.backupPlan, r.creationDate, r.completionDate, r.recoveryPointId, r.jobRunTimeSeconds, r.backupSizeInBytes, r.backupVaultName]),
      };
    case 'restore-jobs':
      return {
        header: ['Report Time Period Start', 'Report Time Period End', 'Restore Job Id', 'Job Status', 'Status Message', 'Restore Type', 'Recovery Point Id', 'Created Resource', 'Creation Date', 'Job Run Time', 'Force', 'Safety Backup Id'],
        rows: report.restoreJobs.map((r) => [...period, r.restoreJobId, r.jobStatus, r.statusMessage, r.restoreType, r.recoveryPointId, r.createdResource, r.creationDate, r.jobRunTimeSeconds ?? '', String(r.force), r.safetyBackupId]),
      };
  }
}

export function renderCsv(report: AuditReport, kind: ReportKind): string {
  const { header, rows } = reportTable(report, kind);
  return `${[header, ...rows].map((row) => row.map(csvCell).join(',')).join('\r\n')}\r\n`;
}

/** `--format json`: the whole report, or one of its tables as objects keyed by column. */
export function renderJson(report: AuditReport, kind?: ReportKind): string {
  if (!kind) return `${JSON.stringify(report, null, 2)}\n`;
  const { header, rows } = reportTable(report, kind);
  return `${JSON.stringify(rows.map((row) => Object.fromEntries(header.map((h, i) => [h, row[i]]))), null, 2)}\n`;
}

export function renderMarkdown(report: AuditReport): string {
  const failed = report.controls.filter((c) => c.status === 'FAIL');
  const lines = [
    '# kvdr compliance report',
    '',
    `Period: ${report.period.since} → ${report.period.until} · generated ${report.generatedAt} by ${report.tool}`,
    '',
    `**${report.passed ? 'PASS' : 'FAIL'}**: ${failed.length} of ${report.controls.length} controls failed.`,
    '',
    `Audit trail: ${report.trail.location}, ${report.trail.events} events, ${report.trail.intact ? 'hash chain intact' : '**hash chain broken**'}, head \`${report.trail.head}\``,
    '',
    '## Controls',
    '',
    '| Control | Subject | Status | Summary |',
    '|---|---|---|---|',
    ...report.controls.map((c) => `| ${c.control} | ${md(c.subject)} | ${c.status === 'FAIL' ? '**FAIL**' : c.status} | ${md(c.summary)} |`),
  ];
  if (failed.length > 0) lines.push('', '## Evidence of failed controls', '', ...failed.flatMap(evidence));
  lines.push('', '## Runs per job', '', '| Job | Kind | Schedule | Successes | Failures | Missed slots |', '|---|---|---|---|---|---|');
  for (const t of report.timelines) {
    const count = (outcome: string): number => t.entries.filter((e) => e.outcome === outcome).length;
    lines.push(`| ${md(t.job)} | ${t.kind} | \`${t.schedule}\` | ${count('success')} | ${count('failure')} | ${count('missed')} |`);
  }
  return `${lines.join('\n')}\n`;
}

function evidence(control: ControlResult): string[] {
  return [`### ${control.control} — ${md(control.subject)}`, '', md(control.summary), '', ...control.evidence.map((e) => `- ${e.time ? `${e.time} ` : ''}${e.ref ? `\`${e.ref}\` ` : ''}${md(e.detail)}`), ''];
}

function md(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function csvCell(value: string | number): string {
  if (typeof value === 'number') return String(value);
  // A cell a spreadsheet would run as a formula is prefixed, so a crafted key cannot become one.
  const safe = /^[=+@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

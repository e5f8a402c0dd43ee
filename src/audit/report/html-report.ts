import { CONTROL_IDS, type AuditReport, type ControlResult, type ControlStatus, type EvidenceRow } from './audit-report.js';
import { escapeHtml as esc, renderLegend, renderTimeline } from './html-timeline.js';

// Auditors open this file offline, often attached to a ticket, so it carries everything inline; the
// CSP makes any accidental external reference fail loudly instead of phoning home.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'";

const CSS = `
:root { --ok: #1a7f37; --bad: #cf222e; --missed: #d97706; --na: #6e7781; --line: #d0d7de; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 24px auto; max-width: 1200px; padding: 0 16px; }
h1 { margin: 0 0 8px; font-size: 24px; }
h2 { margin: 28px 0 8px; font-size: 18px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { margin: 16px 0 4px; font-size: 15px; }
code { font: 12px ui-monospace, monospace; word-break: break-all; }
.meta { margin: 2px 0; color: #59636e; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff; font-weight: 700; }
.badge.pass { background: var(--ok); } .badge.fail { background: var(--bad); }
.verdict { font-size: 16px; margin: 12px 0; }
.broken { color: var(--bad); font-weight: 700; } .intact { color: var(--ok); font-weight: 700; }
.chart { overflow-x: auto; }
svg.timeline { display: block; width: 100%; min-width: 720px; height: auto; }
svg .band { fill: #f6f8fa; stroke: var(--line); }
svg .success { fill: var(--ok); }
svg .failure { fill: var(--bad); }
svg .missed { fill: #fff; stroke: var(--missed); stroke-width: 1.5; }
svg .gap { fill: #8250df; }
svg .coverage { fill: var(--ok); opacity: 0.35; }
svg .tick { stroke: #8c959f; }
svg .axis { font-size: 11px; fill: #59636e; }
svg .empty { font-size: 13px; fill: #59636e; font-style: italic; }
.legend { color: #59636e; } .legend-item { margin-right: 18px; white-space: nowrap; }
.swatch { vertical-align: -2px; margin-right: 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { background: #f6f8fa; }
.status { font-weight: 700; white-space: nowrap; }
.status.PASS { color: var(--ok); } .status.FAIL { color: var(--bad); } .status.NA { color: var(--na); }
tr.evidence > td { padding-top: 0; border-bottom: 1px solid var(--line); }
tr.control.has-evidence > td { border-bottom: none; }
.evidence table { margin: 4px 0 8px; font-size: 13px; }
.evidence th, .evidence td { padding: 3px 6px; }
summary { cursor: pointer; color: #59636e; }
`;

// Counts what Chromium actually laid out, so a test can tell a drawn chart from markup that merely parses.
const SCRIPT = `
window.addEventListener('load', function () {
  document.querySelectorAll('svg.timeline').forEach(function (svg) {
    var drawn = 0;
    svg.querySelectorAll('.mark').forEach(function (m) {
      var r = m.getBoundingClientRect();
      if (r.width > 0 && r.height > 0) drawn++;
    });
    svg.setAttribute('data-drawn', String(drawn));
  });
  document.body.dataset.rendered = 'true';
});
`;

const STATUS_RANK: Record<ControlStatus, number> = { FAIL: 0, PASS: 1, 'N/A': 2 };

/** Failures first; within a status, the README's control order; within a control, the report's order (sort is stable). */
function ordered(controls: ControlResult[]): ControlResult[] {
  return [...controls].sort(
    (a, b) => STATUS_RANK[a.status] - STATUS_RANK[b.status] || CONTROL_IDS.indexOf(a.control) - CONTROL_IDS.indexOf(b.control),
  );
}

function evidenceTable(rows: EvidenceRow[]): string {
  const body = rows
    .map((r) => `<tr><td><code>${esc(r.time ?? '')}</code></td><td><code>${esc(r.ref ?? '')}</code></td><td>${esc(r.detail)}</td></tr>`)
    .join('');
  return `<table><thead><tr><th>Time</th><th>Ref</th><th>Detail</th></tr></thead><tbody>${body}</tbody></table>`;
}

function controlRows(c: ControlResult): string {
  const statusClass = c.status === 'N/A' ? 'NA' : c.status;
  const hasEvidence = c.evidence.length > 0;
  const row =
    `<tr class="control ${statusClass}${hasEvidence ? ' has-evidence' : ''}" data-control="${esc(c.control)}">` +
    `<td><code>${esc(c.control)}</code></td><td>${esc(c.subjectType)}: ${esc(c.subject)}</td>` +
    `<td class="status ${statusClass}">${esc(c.status)}</td><td>${esc(c.summary)}</td></tr>`;
  if (!hasEvidence) return row;
  // A failure's evidence is what the reader came for; the rest stays folded to keep the table scannable.
  const open = c.status === 'FAIL' ? ' open' : '';
  return (
    row +
    `<tr class="evidence"><td></td><td colspan="3"><details${open}><summary>evidence (${c.evidence.length})</summary>` +
    `${evidenceTable(c.evidence)}</details></td></tr>`
  );
}

function header(report: AuditReport, failed: number): string {
  // report.passed and the controls should agree; if they do not, the stricter reading wins.
  const pass = report.passed && failed === 0;
  const verdict = pass
    ? `<span class="badge pass">PASS</span> all ${report.controls.length} control results passed or do not apply`
    : `<span class="badge fail">FAIL</span> ${failed} of ${report.controls.length} control results failed`;
  const t = report.trail;
  const chain = t.intact ? '<span class="intact">hash chain intact</span>' : '<span class="broken">hash chain BROKEN</span>';
  return (
    '<h1>kvdr compliance report</h1>' +
    `<p class="meta">Period: <strong>${esc(report.period.since)}</strong> → <strong>${esc(report.period.until)}</strong></p>` +
    `<p class="meta">Generated ${esc(report.generatedAt)} by ${esc(report.tool)}</p>` +
    `<p class="verdict">${verdict}</p>` +
    `<p class="trail">Audit trail: <code>${esc(t.location)}</code> — ${t.events} events, head sha256 <code>${esc(t.head)}</code>, ${chain}</p>`
  );
}

function timelines(report: AuditReport): string {
  if (report.timelines.length === 0) return '<h2>Backup timelines</h2><p>No scheduled jobs.</p>';
  const jobs = report.timelines
    .map(
      (tl) =>
        `<section class="job"><h3>${esc(tl.job)} <span class="meta">${esc(tl.kind)}, schedule <code>${esc(tl.schedule)}</code></span></h3>` +
        `<div class="chart">${renderTimeline(tl, report.period)}</div></section>`,
    )
    .join('');
  return `<h2>Backup timelines</h2>${renderLegend()}${jobs}`;
}

/** The audit report as one self-contained HTML page (inline CSS and SVG; the small script only adds layout counts). */
export function renderHtml(report: AuditReport): string {
  const failed = report.controls.filter((c) => c.status === 'FAIL').length;
  const rows = ordered(report.controls).map(controlRows).join('');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kvdr compliance report ${esc(report.period.since)} → ${esc(report.period.until)}</title>
<style>${CSS}</style>
</head>
<body>
${header(report, failed)}
${timelines(report)}
<h2>Controls</h2>
<table class="controls"><thead><tr><th>Control</th><th>Subject</th><th>Status</th><th>Summary</th></tr></thead>
<tbody>${rows}</tbody></table>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

import type { Manifest } from '../repository/manifest.js';
import type { JobStatus } from '../scheduler/scheduler.js';
import { formatBytes } from '../util/table.js';

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** One self-contained page: the jobs with their last and next runs, and the newest backups. */
export function statusPage(jobs: readonly JobStatus[], backups: readonly Manifest[], role: string): string {
  const jobRows = jobs
    .map((j) => {
      const last = j.lastRun ? `${j.lastRun.ok ? 'ok' : `failed: ${j.lastRun.error ?? ''}`} at ${j.lastRun.finishedAt}` : 'no run yet';
      return `<tr class="${j.lastRun && !j.lastRun.ok ? 'bad' : ''}"><td>${escape(j.job)}</td><td><code>${escape(j.schedule)}</code></td><td>${j.running ? 'running' : ''}</td><td>${escape(last)}</td><td>${escape(j.lastSuccess ?? '-')}</td><td>${escape(j.nextRun ?? '-')}</td></tr>`;
    })
    .join('\n');
  const backupRows = [...backups]
    .reverse()
    .slice(0, 50)
    .map((m) => `<tr><td><code>${escape(m.id)}</code></td><td>${escape(m.kind)}</td><td>${escape(m.finishedAt)}</td><td>${m.records ?? '-'}</td><td>${formatBytes(m.bytes.stored)}</td><td>${escape(m.repository.name)}</td></tr>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kvdr status</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}tr.bad td{color:#b00}</style>
</head><body>
<h1>kvdr</h1><p>scheduler: ${escape(role)}</p>
<h2>Jobs</h2><table><tr><th>job</th><th>schedule</th><th></th><th>last run</th><th>last success</th><th>next run</th></tr>
${jobRows}
</table>
<h2>Newest backups</h2><table><tr><th>id</th><th>kind</th><th>finished</th><th>keys</th><th>size</th><th>repository</th></tr>
${backupRows}
</table></body></html>
`;
}

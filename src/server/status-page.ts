import type { Manifest } from '../repository/manifest.js';
import type { ContinuousState } from '../backup/continuous/state.js';
import type { JobStatus } from '../scheduler/scheduler.js';
import { formatBytes } from '../util/table.js';

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A repository the page could not list, and why (one line). */
export interface RepositoryProblem {
  repository: string;
  error: string;
}

/** What the leader state means to someone reading the page. */
const ROLES: Record<string, string> = {
  starting: 'starting: the scheduler is not up yet',
  single: 'single replica: this process schedules every job',
  leader: 'leader: this replica schedules every job',
  follower: 'follower: another replica schedules the jobs; this one takes over if it stops',
};

/**
 * One self-contained page: the leader state, the jobs with their last and next runs, and the newest
 * backups. A repository that cannot be listed is a banner above the rest, never a blank page: the job
 * table comes from the scheduler's memory, so it is exactly what an operator needs while storage is down.
 */
export function statusPage(jobs: readonly JobStatus[], backups: readonly Manifest[], role: string, problems: readonly RepositoryProblem[] = [], continuous: readonly ContinuousState[] = []): string {
  const banner = problems
    .map((p) => `<p class="banner" role="alert">repository ${escape(p.repository)} cannot be listed: ${escape(p.error)} — its backups are missing below; jobs still run on schedule</p>`)
    .join('\n');
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
  const continuousRows = continuous
    .map((c) => {
      const durable = c.durableAt === undefined ? '-' : `${new Date(c.durableAt).toISOString()} (revision ${c.durableRevision ?? '-'})`;
      return `<tr class="${c.lastError || !c.following ? 'bad' : ''}"><td>${escape(c.job)}</td><td>${c.following ? 'following' : 'not following'}</td><td>${escape(durable)}</td><td>${c.lagSeconds.toFixed(1)} s</td><td>${c.segments}</td><td>${c.gaps}</td><td>${escape(c.lastError ?? '')}</td></tr>`;
    })
    .join('\n');
  const continuousTable =
    continuous.length === 0
      ? ''
      : `<h2>Continuous backups</h2><table class="continuous"><tr><th>job</th><th>source</th><th>every change durable up to</th><th>lag</th><th>segments</th><th>gaps</th><th>last problem</th></tr>\n${continuousRows}\n</table>`;
  const noBackups = backups.length === 0 ? `<p>${problems.length > 0 ? 'no backups listed (see the error above)' : 'no backups yet'}</p>` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kvdr status</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}td,th{border-bottom:1px solid #ddd;padding:4px 10px;text-align:left}tr.bad td{color:#b00}.jobs td:not(:nth-child(4)){white-space:nowrap}.banner{background:#fde8e8;border:1px solid #e0a0a0;color:#900;padding:8px 12px}</style>
</head><body>
<h1>kvdr</h1>
${banner}
<p class="role">scheduler: ${escape(ROLES[role] ?? role)}</p>
<h2>Jobs</h2><table class="jobs"><tr><th>job</th><th>schedule</th><th></th><th>last run</th><th>last success</th><th>next run</th></tr>
${jobRows}
</table>
${continuousTable}
<h2>Newest backups</h2>${noBackups}<table class="backups"><tr><th>id</th><th>kind</th><th>finished</th><th>keys</th><th>size</th><th>repository</th></tr>
${backupRows}
</table></body></html>
`;
}

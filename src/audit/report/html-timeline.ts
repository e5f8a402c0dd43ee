import type { JobTimeline, TimelineEntry } from './audit-report.js';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Every report string goes through this: job names, details and refs come from configs and error messages. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

// The SVG scales to its container (CSS gives it a min-width of 720px), so a mark this many user units
// wide never shrinks below ~2px: a burst of runs minutes apart stays visible as separate ticks.
const WIDTH = 1000;
const HEIGHT = 64;
const BAND_Y = 8;
const BAND_H = 30;
const MARK_W = 3;

/** Fraction of the period at `time`; unparseable or out-of-period times are pinned to the edges rather than dropped, so every entry is drawn. */
function position(time: string, since: number, until: number): number {
  const t = Date.parse(time);
  if (Number.isNaN(t) || until <= since) return 0;
  return Math.min(1, Math.max(0, (t - since) / (until - since)));
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
// Ticks sit on whole UTC hours or days so a label such as "2025-06-02" marks that day's midnight, not some point during it.
const STEPS = [HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY];
const MAX_TICKS = 8;

function axis(since: number, until: number): string {
  if (Number.isNaN(since) || Number.isNaN(until) || until <= since) return '';
  const span = until - since;
  const step = STEPS.find((s) => span / s <= MAX_TICKS) ?? span / MAX_TICKS;
  const parts: string[] = [];
  for (let t = Math.ceil(since / step) * step; t <= until; t += step) {
    const x = ((t - since) / span) * WIDTH;
    // Labels near an edge are anchored inward so they are not clipped by the SVG's box.
    const anchor = x < 40 ? 'start' : x > WIDTH - 40 ? 'end' : 'middle';
    const iso = new Date(t).toISOString();
    const label = step >= DAY ? iso.slice(0, 10) : `${iso.slice(0, 16).replace('T', ' ')}Z`;
    parts.push(
      `<line class="tick" x1="${x.toFixed(2)}" x2="${x.toFixed(2)}" y1="${BAND_Y + BAND_H}" y2="${BAND_Y + BAND_H + 5}"/>`,
      `<text class="axis" x="${x.toFixed(2)}" y="${HEIGHT - 6}" text-anchor="${anchor}">${escapeHtml(label)}</text>`,
    );
  }
  return parts.join('');
}

function mark(entry: TimelineEntry, since: number, until: number): string {
  // Keep the whole mark inside the band even at the period's edges.
  const x = Math.min(WIDTH - MARK_W, Math.max(0, position(entry.time, since, until) * WIDTH - MARK_W / 2));
  const tip = `${entry.time} — ${entry.outcome}: ${entry.detail}${entry.ref === undefined ? '' : ` (${entry.ref})`}`;
  // Missed slots are hollow and shorter: no run happened, so they must not read as a run that failed.
  const [y, h] = entry.outcome === 'missed' ? [BAND_Y + 6, BAND_H - 12] : [BAND_Y + 2, BAND_H - 4];
  return (
    `<rect class="mark ${entry.outcome}" data-time="${escapeHtml(entry.time)}" x="${x.toFixed(2)}" y="${y}" width="${MARK_W}" height="${h}">` +
    `<title>${escapeHtml(tip)}</title></rect>`
  );
}

const DRAW_ORDER: Record<TimelineEntry['outcome'], number> = { success: 0, missed: 1, failure: 2, gap: 3 };

/** A continuous job's restorable stretch: a low bar under the marks, from its base to its newest segment. */
function coverageBar(stretch: NonNullable<JobTimeline['coverage']>[number], since: number, until: number): string {
  const x1 = position(stretch.from, since, until) * WIDTH;
  const x2 = Math.max(x1 + 1, position(stretch.to, since, until) * WIDTH);
  return (
    `<rect class="coverage" data-from="${escapeHtml(stretch.from)}" data-to="${escapeHtml(stretch.to)}" x="${x1.toFixed(2)}" y="${BAND_Y + BAND_H - 8}" width="${(x2 - x1).toFixed(2)}" height="6">` +
    `<title>${escapeHtml(`restorable to any second from ${stretch.from} to ${stretch.to} (chain ${stretch.ref})`)}</title></rect>`
  );
}

/** One job's band across the report period, as an inline SVG. */
export function renderTimeline(timeline: JobTimeline, period: { since: string; until: string }): string {
  const since = Date.parse(period.since);
  const until = Date.parse(period.until);
  // Later SVG elements paint on top: problems are drawn last so a nearby success cannot hide them.
  const entries = [...timeline.entries].sort((a, b) => DRAW_ORDER[a.outcome] - DRAW_ORDER[b.outcome]);
  const body =
    entries.length === 0 && (timeline.coverage ?? []).length === 0
      ? `<text class="empty" x="${WIDTH / 2}" y="${BAND_Y + BAND_H / 2 + 5}" text-anchor="middle">no runs in the period</text>`
      : entries.map((e) => mark(e, since, until)).join('');
  const label = `${timeline.job} (${timeline.kind}, ${timeline.schedule}): ${timeline.entries.length} entries`;
  return (
    `<svg class="timeline" data-job="${escapeHtml(timeline.job)}" data-entries="${timeline.entries.length}" ` +
    `viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escapeHtml(label)}" xmlns="http://www.w3.org/2000/svg">` +
    `<rect class="band" x="0" y="${BAND_Y}" width="${WIDTH}" height="${BAND_H}"/>` +
    axis(since, until) +
    (timeline.coverage ?? []).map((c) => coverageBar(c, since, until)).join('') +
    body +
    '</svg>'
  );
}

/** Swatches drawn like the marks themselves, so the legend cannot drift from the chart. */
export function renderLegend(): string {
  const item = (outcome: TimelineEntry['outcome'] | 'coverage', text: string): string =>
    `<span class="legend-item"><svg class="swatch" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true">` +
    `<rect class="${outcome}" x="4" y="1" width="6" height="12"/></svg>${text}</span>`;
  return `<p class="legend">${item('success', 'backup succeeded')}${item('failure', 'backup failed')}${item('missed', 'missed slot (no run when the schedule called for one)')}${item('gap', 'continuity gap (continuous jobs)')}${item('coverage', 'continuous coverage: any second restorable')}</p>`;
}

import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditReport, TimelineEntry } from '../../src/audit/report/audit-report.js';
import { renderHtml } from '../../src/audit/report/html-report.js';
import { chromium } from '../harness/chromium.js';

const INJECTED = '<script>alert("pwned")</script>';

const nightly: TimelineEntry[] = [
  { time: '2025-06-01T02:00:05Z', outcome: 'success', detail: 'backup 41 KiB', ref: '20250601T020005Z-nightly-a1b2c3' },
  { time: '2025-06-02T02:00:04Z', outcome: 'success', detail: 'backup 41 KiB', ref: '20250602T020004Z-nightly-d4e5f6' },
  // Minutes after the previous run: the two marks must both stay visible.
  { time: '2025-06-02T02:04:00Z', outcome: 'success', detail: 'manual run', ref: '20250602T020400Z-nightly-0a0b0c' },
  { time: '2025-06-03T02:00:00Z', outcome: 'missed', detail: 'no run for the 02:00 slot' },
  { time: '2025-06-04T02:00:09Z', outcome: 'failure', detail: `etcd unreachable ${INJECTED}` },
  { time: '2025-06-05T02:00:00Z', outcome: 'missed', detail: 'no run for the 02:00 slot' },
  { time: '2025-06-06T02:00:03Z', outcome: 'success', detail: 'backup 42 KiB', ref: '20250606T020003Z-nightly-112233' },
  { time: '2025-06-07T02:00:02Z', outcome: 'success', detail: 'backup 42 KiB', ref: '20250607T020002Z-nightly-445566' },
];

const report: AuditReport = {
  generatedAt: '2025-06-08T00:00:10Z',
  period: { since: '2025-06-01T00:00:00Z', until: '2025-06-08T00:00:00Z' },
  tool: 'kvdr 0.1.0',
  trail: { location: 's3://audit-bucket/audit/', events: 9, head: 'ab'.repeat(32), intact: true },
  controls: [
    { control: 'COVERAGE', subjectType: 'source', subject: 'etcd', status: 'PASS', summary: 'covered by nightly', evidence: [] },
    {
      control: 'FREQUENCY',
      subjectType: 'job',
      subject: 'nightly',
      status: 'FAIL',
      summary: `2 missed slots ${INJECTED}`,
      evidence: [
        { time: '2025-06-03T02:00:00Z', detail: 'missed slot' },
        { time: '2025-06-05T02:00:00Z', ref: 'slot-0605', detail: `missed slot ${INJECTED}` },
      ],
    },
    { control: 'ENCRYPTED', subjectType: 'repository', subject: 's3-west', status: 'PASS', summary: 'SSE-KMS', evidence: [{ ref: 'bucket', detail: 'aws:kms' }] },
    { control: 'FREQUENCY', subjectType: 'job', subject: 'px-dumps', status: 'N/A', summary: 'PX dumps are event-driven', evidence: [] },
    { control: 'TRAIL_INTEGRITY', subjectType: 'trail', subject: 'audit', status: 'PASS', summary: '9 events, chain intact', evidence: [] },
  ],
  timelines: [
    { job: 'nightly', kind: 'etcd-snapshot', schedule: '0 2 * * *', entries: nightly },
    { job: 'weekly-consul', kind: 'consul-export', schedule: '0 3 * * 0', entries: [] },
  ],
  backupJobs: [],
  restoreJobs: [],
  passed: false,
};


const attr = (tag: string, name: string): string | undefined => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];
const count = (text: string, re: RegExp): number => text.match(re)?.length ?? 0;

describe('the HTML audit report in headless Chromium', () => {
  let dir: string;
  let page: string;
  // Kept, not thrown, in beforeAll: a missing Chromium must fail every test, and vitest reports a beforeAll error as skipped tests.
  let dumped: { dom: string } | { error: unknown };
  const dumpedDom = (): string => {
    if ('error' in dumped) throw dumped.error;
    return dumped.dom;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kvdr-html-'));
    page = join(dir, 'report.html');
    await writeFile(page, renderHtml(report));
    try {
      dumped = { dom: await chromium(dir, 'dom', ['--dump-dom', `file://${page}`]) };
    } catch (error) {
      dumped = { error };
    }
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the layout script: every mark of every timeline has a drawn box', () => {
    const dom = dumpedDom();
    expect(dom).toMatch(/<body[^>]*\sdata-rendered="true"/);
    const svgs = [...dom.matchAll(/<svg\b([^>]*\bclass="timeline"[^>]*)>([\s\S]*?)<\/svg>/g)];
    expect(svgs.map((m) => attr(m[1] ?? '', 'data-job'))).toEqual(report.timelines.map((t) => t.job));
    for (const [, tag = '', body = ''] of svgs) {
      const timeline = report.timelines.find((t) => t.job === attr(tag, 'data-job'));
      const entries = timeline?.entries ?? [];
      const expected = String(entries.length);
      expect(attr(tag, 'data-entries')).toBe(expected);
      expect(attr(tag, 'data-drawn'), `marks drawn for ${timeline?.job}`).toBe(expected);
      for (const outcome of ['success', 'failure', 'missed'] as const) {
        expect(count(body, new RegExp(`class="mark ${outcome}"`, 'g')), `${outcome} marks of ${timeline?.job}`).toBe(
          entries.filter((e) => e.outcome === outcome).length,
        );
      }
      if (entries.length === 0) expect(body).toContain('no runs in the period');
    }
    expect(count(dom, /class="mark success"/g)).toBe(5);
    expect(count(dom, /class="mark failure"/g)).toBe(1);
    expect(count(dom, /class="mark missed"/g)).toBe(2);
    expect(dom).toContain('data-time="2025-06-04T02:00:09Z"');
  });

  it('escapes report text: the injected <script> is text, never an element', () => {
    const dom = dumpedDom();
    // The page's own layout script is the only script element Chromium saw.
    expect(count(dom, /<script\b/g)).toBe(1);
    expect(dom).not.toContain('alert("pwned")</script>');
    expect(dom).toContain('2 missed slots &lt;script&gt;alert("pwned")&lt;/script&gt;');
    expect(dom).toContain('etcd unreachable &lt;script&gt;');
  });

  it('shows the verdict, the trail, and the failed control first with its evidence open', () => {
    const dom = dumpedDom();
    expect(dom).toContain('kvdr compliance report');
    expect(dom).toMatch(/class="badge fail">FAIL<\/span> 1 of 5 control results failed/);
    expect(dom).toContain('head sha256 <code>' + 'ab'.repeat(32) + '</code>');
    expect(dom).toContain('hash chain intact');
    const rows = [...dom.matchAll(/<tr class="control [^"]*" data-control="([A-Z_]+)">[\s\S]*?<td class="status [^"]*">([^<]+)<\/td>/g)];
    expect(rows.map((m) => `${m[1]} ${m[2]}`)).toEqual([
      'FREQUENCY FAIL',
      'COVERAGE PASS',
      'ENCRYPTED PASS',
      'TRAIL_INTEGRITY PASS',
      'FREQUENCY N/A',
    ]);
    const evidence = /data-control="FREQUENCY">[\s\S]*?<details open="">([\s\S]*?)<\/details>/.exec(dom)?.[1] ?? '';
    expect(evidence).toContain('2025-06-03T02:00:00Z');
    expect(evidence).toContain('slot-0605');
    expect(evidence).toContain('missed slot &lt;script&gt;');
  });

  it('renders to a screenshot', async () => {
    const shot = join(dir, 'shot.png');
    await chromium(dir, 'shot', [`--screenshot=${shot}`, '--window-size=1280,2000', `file://${page}`]);
    expect((await stat(shot)).size).toBeGreaterThan(10 * 1024);
  });
});

import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/audit/audit-log.js';
import type { AuditInputs } from '../../src/audit/audit-inputs.js';
import { judge } from '../../src/audit/build-report.js';
import { renderHtml } from '../../src/audit/report/html-report.js';
import { testConfig } from '../harness/config.js';
import { sampleManifest } from '../harness/manifests.js';

const config = testConfig({
  sources: [{ name: 'e', type: 'etcd', endpoints: ['http://127.0.0.1:2379'], prefix: 'pwx/c1/' }],
  repositories: [{ name: 'local', type: 'fs', path: '/tmp/kvdr-unit' }],
  jobs: [{ name: 'cont', source: 'e', kind: 'etcd-continuous', schedule: '0 0 * * *', repository: 'local', rpoMinutes: 10 }],
});
const since = new Date('2026-11-27T00:00:00Z');
const until = new Date('2026-11-28T00:00:00Z');
const base = (id: string, at: string): ReturnType<typeof sampleManifest> =>
  sampleManifest({ id, job: 'cont', kind: 'etcd-continuous', startedAt: at, finishedAt: at, details: { role: 'base', format: 'etcd-export' } });

function inputs(events: AuditEvent[], chainsTo: string): AuditInputs {
  const first = base('20261127T000100Z-cont-aaaaaa', '2026-11-27T00:01:00.000Z');
  const second = base('20261127T120000Z-cont-bbbbbb', '2026-11-27T12:00:00.000Z');
  return {
    config,
    since,
    until,
    manifests: [first, second],
    artifacts: new Set([`local/${first.repository.key}`, `local/${second.repository.key}`]),
    events,
    trail: { events: events.length, head: 'f'.repeat(64), location: 'file:///tmp/kvdr-unit' },
    protection: new Map([['local', { versioning: 'unsupported', objectLock: { enabled: false } }]]),
    chains: [
      { job: 'cont', repository: 'local', base: first.id, from: first.finishedAt, to: '2026-11-27T11:59:58.000Z', segments: 700 },
      { job: 'cont', repository: 'local', base: second.id, from: second.finishedAt, to: chainsTo, segments: 600 },
    ],
  };
}

const gap: AuditEvent = {
  seq: 1,
  id: 'e1',
  time: '2026-11-27T06:00:00.000Z',
  type: 'continuity-gap',
  actor: { user: 'kvdr', host: 'h', tool: 'kvdr' },
  subject: { job: 'cont', fromRevision: 1001, toRevision: 1200, cause: 'the source no longer has revision 1001 (compacted)', newBase: 'x' },
  prev: '0'.repeat(64),
};

describe('CONTINUITY and the durable recovery point of continuous jobs', () => {
  it('passes with no gap, and LAST_RECOVERY_POINT takes the newest segment, not the newest base', () => {
    const report = judge(inputs([], '2026-11-27T23:58:00.000Z'));
    const continuity = report.controls.find((c) => c.control === 'CONTINUITY');
    expect(continuity).toMatchObject({ subject: 'cont', status: 'PASS' });
    expect(continuity?.summary).toContain('changes recorded up to 2026-11-27T23:58:00.000Z');
    const lrp = report.controls.find((c) => c.control === 'LAST_RECOVERY_POINT');
    // The newest base is 12 h old; the newest durable change 2 minutes.
    expect(lrp).toMatchObject({ status: 'PASS' });
    expect(lrp?.summary).toMatch(/^newest recovery point is 2 min old/);
  });

  it('fails on a gap in the period, naming its revisions and cause; an old durable point fails the RPO', () => {
    const report = judge(inputs([gap], '2026-11-27T22:00:00.000Z'));
    const continuity = report.controls.find((c) => c.control === 'CONTINUITY');
    expect(continuity?.status).toBe('FAIL');
    expect(continuity?.evidence[0]).toMatchObject({ ref: 'revisions 1001..1200', detail: expect.stringContaining('compacted') as string });
    expect(report.controls.find((c) => c.control === 'LAST_RECOVERY_POINT')?.status).toBe('FAIL');
    expect(report.passed).toBe(false);
  });

  it('draws the restorable stretches and the gap on the job timeline', () => {
    const report = judge(inputs([gap], '2026-11-27T23:58:00.000Z'));
    const timeline = report.timelines.find((t) => t.job === 'cont');
    expect(timeline?.coverage).toHaveLength(2);
    expect(timeline?.entries.filter((e) => e.outcome === 'gap')).toHaveLength(1);
    const html = renderHtml(report);
    expect(html.match(/class="coverage" data-from/g)).toHaveLength(2);
    expect(html).toContain('class="mark gap"');
  });
});

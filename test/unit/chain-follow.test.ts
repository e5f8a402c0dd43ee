import { describe, expect, it } from 'vitest';
import { goesOnPast, type StoredSegment } from '../../src/repository/chains.js';
import { sampleManifest } from '../harness/manifests.js';

const segment = (first: number, writtenAt: string, merged = false): StoredSegment => ({
  key: `segments/j/old/${first}.seg`,
  base: 'old',
  first,
  ...(merged ? { last: first + 10 } : {}),
  merged,
  size: 100,
  lastModified: new Date(writtenAt),
});

// A newer base of the job at revision 300, finished at 12:00.
const newer = sampleManifest({ id: 'new', job: 'j', revision: 300, finishedAt: '2026-11-28T12:00:00.000Z', details: { role: 'base' } });

describe('goesOnPast: is an older chain still written past a newer base', () => {
  it('yes, when a small segment starts past its revision after it was taken (a base taken on its own)', () => {
    expect(goesOnPast([segment(100, '2026-11-28T11:00:00Z'), segment(301, '2026-11-28T12:00:05Z')], newer)).toBe(true);
  });

  it('no, when the chain only reached further before the newer base (its source went back: a reset)', () => {
    // Revisions 400-500 were written before the base at 300 was taken: another history, not a continuation.
    expect(goesOnPast([segment(100, '2026-11-28T10:00:00Z'), segment(400, '2026-11-28T11:00:00Z'), segment(500, '2026-11-28T11:59:00Z')], newer)).toBe(false);
  });

  it('no, when a rebase ended it at the newer base, or only a merge rewrote it later', () => {
    expect(goesOnPast([segment(250, '2026-11-28T11:59:00Z')], newer)).toBe(false);
    expect(goesOnPast([segment(400, '2026-11-28T13:00:00Z', true)], newer)).toBe(false);
  });
});

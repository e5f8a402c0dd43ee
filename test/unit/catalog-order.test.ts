import { describe, expect, it } from 'vitest';
import { oldestFirst } from '../../src/repository/catalog.js';
import { sampleManifest } from '../harness/manifests.js';

describe('the order of backups', () => {
  it('puts the earlier of two backups taken in the same second first, whatever their random id suffix', () => {
    const first = sampleManifest({ id: '20261123T010000Z-j-ffffff', startedAt: '2026-11-23T01:00:00.100Z', finishedAt: '2026-11-23T01:00:00.400Z' });
    const second = sampleManifest({ id: '20261123T010000Z-j-000000', startedAt: '2026-11-23T01:00:00.450Z', finishedAt: '2026-11-23T01:00:00.900Z' });
    expect([second, first].sort(oldestFirst).map((m) => m.id)).toEqual([first.id, second.id]);
  });

  it('orders by finish, then start, then id', () => {
    const at = '2026-11-23T01:00:05.000Z';
    const a = sampleManifest({ id: 'a', startedAt: '2026-11-23T01:00:01.000Z', finishedAt: at });
    const b = sampleManifest({ id: 'b', startedAt: '2026-11-23T01:00:00.000Z', finishedAt: at });
    const c = sampleManifest({ id: 'c', startedAt: '2026-11-23T01:00:00.000Z', finishedAt: at });
    expect([a, c, b].sort(oldestFirst).map((m) => m.id)).toEqual(['b', 'c', 'a']);
  });
});

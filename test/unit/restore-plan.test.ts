import { describe, expect, it } from 'vitest';
import { TopLevelCounts } from '../../src/restore/plan.js';

describe('plan summary: keys per top-level path', () => {
  it('lists every path while there are few', () => {
    const counts = new TopLevelCounts();
    for (const path of ['nodes/', 'nodes/', 'alerts/', 'volumes/', 'nodes/']) counts.add(path);
    expect(counts.summary()).toEqual({ rows: [['alerts/', 1], ['nodes/', 3], ['volumes/', 1]] });
    expect(JSON.stringify(counts)).toBe('{"alerts/":1,"nodes/":3,"volumes/":1}');
  });

  it('keeps the largest paths and folds the rest into one line', () => {
    const counts = new TopLevelCounts();
    for (let i = 0; i < 30; i++) for (let k = 0; k <= i; k++) counts.add(`p${String(i).padStart(2, '0')}/`);
    const { rows, others } = counts.summary(3);
    expect(rows).toEqual([['p27/', 28], ['p28/', 29], ['p29/', 30]]);
    expect(others).toEqual({ paths: 27, keys: (27 * 28) / 2 });
    // --json shows the default 20 largest, and the others under one name.
    const json = counts.toJSON();
    expect(Object.keys(json)).toHaveLength(21);
    expect(json['(10 other paths)']).toBe(55);
  });

  it('holds a bounded number of paths on a flat keyspace, and still counts every key', () => {
    const counts = new TopLevelCounts(100);
    counts.add('big/');
    counts.add('big/');
    for (let i = 0; i < 100_000; i++) counts.add(`key-${i}`);
    const { rows, others } = counts.summary(20);
    expect(rows).toHaveLength(20);
    expect(rows).toContainEqual(['big/', 2]);
    expect(others?.paths).toBe(100_000 - 19);
    expect(rows.reduce((n, [, keys]) => n + keys, 0) + (others?.keys ?? 0)).toBe(100_002);
    // Bounded: what is held is the map, never more than its capacity.
    expect((counts as unknown as { counts: Map<string, number> }).counts.size).toBeLessThanOrEqual(100);
  });
});

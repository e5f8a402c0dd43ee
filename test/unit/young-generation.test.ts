import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

/**
 * Node says V8 flags set after start-up "may simply do nothing". This one must work: a child process
 * churns through short-lived objects (with some survivors, as a stream's buffers have) and reports
 * how large its young generation grew, with and without keepYoungGenerationSmall called first.
 */
async function youngGenerationMiB(keepSmall: boolean): Promise<number> {
  const script = `
    import { getHeapSpaceStatistics } from 'node:v8';
    ${keepSmall ? `const { keepYoungGenerationSmall } = await import(${JSON.stringify(new URL('../../src/util/young-generation.ts', import.meta.url).href)}); keepYoungGenerationSmall();` : ''}
    const kept = [];
    for (let i = 0; i < 2_000_000; i++) {
      const o = { i, s: 'x'.repeat(i % 64), b: new Array(8).fill(i) };
      if (i % 50 === 0) kept.push(o);
      if (kept.length > 2000) kept.splice(0, 1000);
    }
    const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    console.log(space.physical_space_size);`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
  return Number(stdout.trim()) / 1024 ** 2;
}

describe('keepYoungGenerationSmall', () => {
  it('stops the young generation growing, though it is set after start-up', async () => {
    const [small, grown] = await Promise.all([youngGenerationMiB(true), youngGenerationMiB(false)]);
    expect(small).toBeLessThanOrEqual(4);
    expect(grown).toBeGreaterThan(small * 2);
  }, 60_000);
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Segmenter, spooledSegments } from '../../src/backup/continuous/segmenter.js';
import { FsStore } from '../../src/repository/fs-store.js';
import { createLogger } from '../../src/util/logger.js';

describe('Segmenter.stop', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it('ends a backoff between failed uploads at once, and leaves the segment in the spool', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kvdr-segmenter-'));
    dirs.push(dir);
    // A repository whose root is a plain file: every write fails, as a repository that is away does.
    const root = join(dir, 'not-a-directory');
    await writeFile(root, 'x');
    const spoolDir = join(dir, 'spool');
    const segmenter = new Segmenter({
      store: new FsStore({ path: root }),
      tip: { job: 'j', base: 'base-1', baseRevision: 10, source: { type: 'etcd' }, scope: '', last: 10, chain: 'c0' },
      compression: 'none',
      spoolDir,
      logger: createLogger({ level: 'silent', pretty: false }),
      retryMs: 60_000,
    });
    const at = Date.now();
    await segmenter.add({ revision: 11, at, events: [{ op: 'put', key: Buffer.from('k'), value: Buffer.from('v'), revision: 11, createRevision: 11, version: 1, lease: '0', at }] });
    await segmenter.flush();
    // The upload has failed once and the segmenter now waits a minute before the next attempt.
    for (let i = 0; i < 200 && segmenter.state().uploadError === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    expect(segmenter.state().uploadError).toMatch(/not-a-directory/);

    const stopping = Date.now();
    segmenter.stop();
    await segmenter.drain();
    expect(Date.now() - stopping).toBeLessThan(1_000);
    expect((await spooledSegments(spoolDir, 'base-1')).map((s) => s.first)).toEqual([11]);
  }, 10_000);
});

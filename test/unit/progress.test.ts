import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/util/logger.js';
import { progress } from '../../src/util/progress.js';

/** A stream that collects what is written to it, optionally claiming to be a terminal. */
function sink(tty: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = Object.assign(new PassThrough(), { isTTY: tty, columns: 120, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
}

describe('restore progress', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('draws a bar on a terminal, with the count of keys', () => {
    const out = sink(true);
    const bar = progress('restoring into etcd', 200, createLogger({ level: 'silent', pretty: false }), out.stream);
    bar.update(100);
    bar.stop();
    expect(out.text()).toContain('restoring into etcd [');
    expect(out.text()).toContain('100/200 keys');
    expect(out.text()).toContain('50%');
  });

  it('logs a line every few seconds when there is no terminal, and nothing in between', () => {
    vi.useFakeTimers({ now: new Date('2026-11-24T00:00:00Z') });
    const log = sink(false);
    const logger = createLogger({ level: 'info', pretty: false, destination: log.stream });
    const bar = progress('restoring into consul', 1000, logger, sink(false).stream);
    bar.update(10);
    vi.advanceTimersByTime(5_000);
    bar.update(600);
    bar.update(601);
    vi.advanceTimersByTime(5_000);
    bar.update(1000);
    bar.stop();
    const lines = log
      .text()
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { msg: string; done: number; total: number }));
    expect(lines.map((l) => l.msg)).toEqual(['restoring into consul: 600 of 1000 keys', 'restoring into consul: 1000 of 1000 keys']);
    expect(lines[0]).toMatchObject({ done: 600, total: 1000 });
  });
});

import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/util/logger.js';

function capture(): { stream: Writable; lines: () => string[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, lines: () => text.split('\n').filter((l) => l !== '') };
}

describe('logger', () => {
  it('writes JSON lines when not on a terminal, at the chosen level', () => {
    const out = capture();
    const logger = createLogger({ destination: out.stream, pretty: false, level: 'warn' });
    logger.info('hidden');
    logger.warn({ job: 'etcd-hourly' }, 'slow backup');
    const lines = out.lines();
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ level: 40, job: 'etcd-hourly', msg: 'slow backup', name: 'kvdr' });
  });

  it('never writes secrets', () => {
    const out = capture();
    const logger = createLogger({ destination: out.stream, pretty: false });
    logger.info({ auth: { username: 'root', password: 'hunter2' }, token: 't0k3n', credentials: { secretAccessKey: 'sk' } }, 'connecting');
    const text = out.lines().join('\n');
    expect(text).toContain('root');
    expect(text).not.toMatch(/hunter2|t0k3n|"sk"/);
  });

  it('prints human-readable lines on a terminal', () => {
    const out = capture();
    const logger = createLogger({ destination: out.stream, pretty: true });
    logger.info({ job: 'j' }, 'backup finished');
    const [line] = out.lines();
    expect(line).toContain('backup finished');
    expect(() => {
      JSON.parse(line ?? '');
    }).toThrow();
  });
});

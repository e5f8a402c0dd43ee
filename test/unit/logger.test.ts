import { execFile } from 'node:child_process';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
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

  it('loads pino-pretty only for a terminal', async () => {
    // A fresh process: whether a module is loaded is process-wide.
    const script = `
      import { createRequire } from 'node:module';
      import { Writable } from 'node:stream';
      const { createLogger } = await import(${JSON.stringify(new URL('../../src/util/logger.ts', import.meta.url).href)});
      const loaded = () => Object.keys(createRequire(import.meta.url).cache).some((path) => path.includes('/pino-pretty/'));
      const sink = new Writable({ write: (_chunk, _encoding, done) => done() });
      createLogger({ destination: sink, pretty: false }).info('json');
      const afterJson = loaded();
      createLogger({ destination: sink, pretty: true }).info('pretty');
      console.log(JSON.stringify({ afterJson, afterPretty: loaded() }));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
    expect(JSON.parse(stdout)).toEqual({ afterJson: false, afterPretty: true });
  });
});

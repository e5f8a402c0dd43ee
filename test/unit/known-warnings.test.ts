import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

/**
 * A child process makes the TLS connection grpc-js makes to an etcd endpoint given by address (server
 * name = the IP) and emits an unrelated warning; what Node prints on stderr is the behaviour.
 */
async function stderrOf(filtered: boolean): Promise<string> {
  const script = `
    ${filtered ? `const { dropIpServernameWarning } = await import(${JSON.stringify(new URL('../../src/util/known-warnings.ts', import.meta.url).href)}); dropIpServernameWarning();` : ''}
    const tls = await import('node:tls');
    const socket = tls.connect({ host: '127.0.0.1', port: 1, servername: '127.0.0.1' });
    socket.on('error', () => undefined);
    process.emitWarning('something else', 'DeprecationWarning', 'DEP0999');
    await new Promise((r) => setTimeout(r, 100));`;
  const { stderr } = await run(process.execPath, ['--input-type=module', '-e', script]);
  return stderr;
}

describe('dropIpServernameWarning', () => {
  it("silences Node's DEP0123 for a TLS server name that is an IP, and nothing else", async () => {
    const [plain, filtered] = await Promise.all([stderrOf(false), stderrOf(true)]);
    expect(plain).toContain('DEP0123');
    expect(filtered).not.toContain('DEP0123');
    expect(filtered).toContain('DEP0999');
  }, 30_000);
});

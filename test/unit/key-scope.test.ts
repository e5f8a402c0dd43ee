import { describe, expect, it } from 'vitest';
import { checkPrefixFlags, KeyScope } from '../../src/restore/key-scope.js';
import { UsageError } from '../../src/util/errors.js';
import { ExitCode } from '../../src/util/exit-codes.js';

function usageErrorOf(action: () => unknown): UsageError {
  try {
    action();
  } catch (err) {
    if (err instanceof UsageError) return err;
    throw err;
  }
  throw new Error('expected a UsageError');
}

describe('KeyScope prefixes end at a path boundary', () => {
  it('refuses --to-prefix without a trailing slash, naming the flag and the fix', () => {
    const err = usageErrorOf(() => new KeyScope({ base: 'pwx/c1/', toPrefix: 'drill' }));
    expect(err.exitCode).toBe(ExitCode.Usage);
    expect(err.message).toBe(`--to-prefix "drill" must end with '/', or it also covers neighbouring keys such as "drill2/…"; use --to-prefix drill/`);
  });

  it('refuses --prefix without a trailing slash, relative or absolute', () => {
    expect(usageErrorOf(() => new KeyScope({ base: 'pwx/c1/', prefix: 'nodes' })).message).toMatch(/^--prefix "nodes" must end with '\/'.*; use --prefix nodes\/$/);
    expect(usageErrorOf(() => new KeyScope({ base: '', prefix: 'pwx/c1' })).message).toMatch(/use --prefix pwx\/c1\/$/);
  });

  it('refuses an empty --to-prefix, and accepts an empty --prefix (the whole base)', () => {
    expect(usageErrorOf(() => new KeyScope({ base: '', toPrefix: '' })).message).toMatch(/non-empty/);
    expect(new KeyScope({ base: 'pwx/c1/', prefix: '' }).scope.toString()).toBe('pwx/c1/');
  });

  it('is the same check the commands run on their flags before anything else', () => {
    expect(() => checkPrefixFlags({ prefix: 'a/', toPrefix: 'b/' })).not.toThrow();
    expect(() => checkPrefixFlags({})).not.toThrow();
    expect(usageErrorOf(() => checkPrefixFlags({ prefix: 'a/', toPrefix: 'b' })).message).toMatch(/^--to-prefix "b"/);
  });

  it('with the slash, a neighbour that shares the name is outside the scope', () => {
    const scope = new KeyScope({ base: 'pwx/c1/', toPrefix: 'drill/' });
    expect(scope.map(Buffer.from('pwx/c1/nodes/n1'))?.toString()).toBe('drill/nodes/n1');
    expect(scope.map(Buffer.from('pwx/c10/nodes/n1'))).toBeUndefined();
    expect(scope.scope.compare(Buffer.from('drill2/x'), 0, scope.scope.length)).not.toBe(0);
  });
});

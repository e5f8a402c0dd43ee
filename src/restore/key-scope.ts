import { UsageError } from '../util/errors.js';

export interface KeyScopeOptions {
  /** Where the artifact's keys live: the backup's scope, or `pwx/<clusterId>/` for a PX dump. */
  base: string;
  /** `--prefix`: restore only keys under it; absolute, or relative to the base. */
  prefix?: string;
  /** `--to-prefix`: re-root the restored keys under it. */
  toPrefix?: string;
}

/**
 * Refuses a `--prefix` or `--to-prefix` that does not end at a path boundary. Keys are matched by
 * bytes: `--to-prefix drill` would write `drillnodes/…`, and the scope `drill` holds `drill2/…` too,
 * which `--force` would then delete.
 */
export function checkPrefixFlags(flags: Pick<KeyScopeOptions, 'prefix' | 'toPrefix'>): void {
  if (flags.toPrefix === '') throw new UsageError('--to-prefix: give a non-empty prefix to re-root keys under');
  for (const [flag, value] of [['--prefix', flags.prefix], ['--to-prefix', flags.toPrefix]] as const) {
    if (value !== undefined && value !== '' && !value.endsWith('/')) {
      throw new UsageError(`${flag} "${value}" must end with '/', or it also covers neighbouring keys such as "${value}2/…"; use ${flag} ${value}/`);
    }
  }
}

/**
 * Which keys a restore writes and where: keys under `from` are kept (others skipped) and moved to
 * `scope` + the rest of the key. `scope` is also what the abort/--force rule counts and deletes.
 */
export class KeyScope {
  readonly from: Buffer;
  readonly scope: Buffer;

  constructor(options: KeyScopeOptions) {
    checkPrefixFlags(options);
    const from = options.prefix === undefined ? options.base : options.prefix.startsWith(options.base) ? options.prefix : options.base + options.prefix;
    this.from = Buffer.from(from);
    this.scope = Buffer.from(options.toPrefix ?? from);
  }

  /** The key to write for an artifact key, or undefined when it is outside what is restored. */
  map(key: Buffer): Buffer | undefined {
    if (key.length < this.from.length || this.from.compare(key, 0, this.from.length) !== 0) return undefined;
    if (this.scope.equals(this.from)) return key;
    return Buffer.concat([this.scope, key.subarray(this.from.length)]);
  }

  /** The first path segment under the scope: how dry-runs and plans summarise keys. */
  topLevel(target: Buffer): string {
    const rest = target.subarray(this.scope.length).toString('utf8');
    const slash = rest.indexOf('/');
    return slash < 0 ? rest : `${rest.slice(0, slash)}/`;
  }
}

import { clusterScope } from '../config/scope.js';
import { UsageError } from '../util/errors.js';

export interface KeyScopeOptions {
  /** Where the artifact's keys live: the backup's scope, or `pwx/<clusterId>/` for a PX dump. */
  base: string;
  /** `--prefix`: restore only keys under it; absolute, or relative to the base. */
  prefix?: string;
  /** `--to-prefix`: re-root the restored keys under it. */
  toPrefix?: string;
  /** Merge runs of '/' in the keys written, as Portworx's Consul client does to every key it reads or writes. */
  mergeSlashes?: boolean;
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
  private readonly mergeSlashes: boolean;

  constructor(options: KeyScopeOptions) {
    checkPrefixFlags(options);
    const from = options.prefix === undefined ? options.base : options.prefix.startsWith(options.base) ? options.prefix : options.base + options.prefix;
    this.from = Buffer.from(from);
    this.scope = Buffer.from(options.toPrefix ?? from);
    this.mergeSlashes = options.mergeSlashes ?? false;
  }

  /** The key to write for an artifact key, or undefined when it is outside what is restored. */
  map(key: Buffer): Buffer | undefined {
    if (key.length < this.from.length || this.from.compare(key, 0, this.from.length) !== 0) return undefined;
    const mapped = this.scope.equals(this.from) ? key : Buffer.concat([this.scope, key.subarray(this.from.length)]);
    return this.mergeSlashes && mapped.includes(DOUBLE_SLASH) ? mergeSlashes(mapped) : mapped;
  }

  /**
   * Whether a key lies inside the scope: its bytes start with the scope's, and read as a path it does
   * not climb out of it (`pwx/c1/a/../../c2/x` starts like `pwx/c1/` but names `pwx/c2/x` to anything
   * that resolves paths, as a URL does). etcd and Consul's transactions store such a key verbatim;
   * the plan refuses it all the same, since no real artifact holds one.
   */
  holds(key: Buffer): boolean {
    if (key.length < this.scope.length || this.scope.compare(key, 0, this.scope.length) !== 0) return false;
    // Only a '..' segment can climb; most keys have none, and the search is native.
    if (!key.includes(DOT_DOT, this.scope.length)) return true;
    let depth = 0;
    for (const segment of key.subarray(this.scope.length).toString('latin1').split('/')) {
      if (segment === '..') depth--;
      else if (segment !== '.' && segment !== '') depth++;
      if (depth < 0) return false;
    }
    return true;
  }

  /** The first path segment under the scope: how dry-runs and plans summarise keys. */
  topLevel(target: Buffer): string {
    const rest = target.subarray(this.scope.length).toString('utf8');
    const slash = rest.indexOf('/');
    return slash < 0 ? rest : `${rest.slice(0, slash)}/`;
  }
}

const DOUBLE_SLASH = Buffer.from('//');
const DOT_DOT = Buffer.from('..');

/** `pwx/c1//a///b` → `pwx/c1/a/b`. */
function mergeSlashes(key: Buffer): Buffer {
  const out = Buffer.allocUnsafe(key.length);
  let n = 0;
  for (let i = 0; i < key.length; i++) {
    const byte = key[i] as number;
    if (byte === 0x2f && n > 0 && out[n - 1] === 0x2f) continue;
    out[n++] = byte;
  }
  return out.subarray(0, n);
}

/** Where an artifact's keys come from, as far as the scope rule cares. */
export interface ArtifactKeys {
  /** PX dump keys are relative to the cluster domain; every other artifact holds whole keys. */
  relative: boolean;
  /** Whole keys: the scope they were taken from (a backup's scope, an export's header; '' = everything). */
  takenFrom: string;
}

/** The flags every restore shares that decide where keys land. */
export interface ScopeFlags {
  /** Required for relative (PX dump) keys: they land under `pwx/<clusterId>/`. */
  clusterId?: string;
  prefix?: string;
  toPrefix?: string;
}

/**
 * The scope rule (DESIGN.md, "Scope"), the one place it is decided: a PX dump's keys are relative and
 * land under `pwx/<cluster-id>/` (narrowed by --prefix, given relative or absolute) — in Consul, with
 * repeated '/' merged as Portworx's Consul client does; other artifacts' keys stay where they were
 * taken from, narrowed by --prefix. --to-prefix re-roots either, and the scope is then the new root.
 */
export function keyScopeFor(keys: ArtifactKeys, flags: ScopeFlags, target: 'etcd' | 'consul'): KeyScope {
  if (!keys.relative) {
    return new KeyScope({ base: keys.takenFrom, ...pick(flags.prefix, 'prefix'), ...pick(flags.toPrefix, 'toPrefix') });
  }
  if (flags.clusterId === undefined || flags.clusterId === '') {
    throw new UsageError('--cluster-id: a PX dump holds keys relative to pwx/<cluster-id>/; name the cluster');
  }
  const domain = clusterScope(flags.clusterId);
  const prefix = flags.prefix !== undefined && flags.prefix.startsWith(domain) ? flags.prefix.slice(domain.length) : flags.prefix;
  // Portworx reads a Consul KVDB through a client that merges repeated '/': a dump taken from etcd
  // (whose client keeps them) must land in Consul where Portworx will look. Two keys that merge into
  // one are then a duplicate, refused by the plan before any write.
  return new KeyScope({ base: '', ...pick(prefix, 'prefix'), toPrefix: flags.toPrefix ?? domain + (prefix ?? ''), mergeSlashes: target === 'consul' });
}

function pick<K extends string>(value: string | undefined, name: K): Partial<Record<K, string>> {
  return value === undefined ? {} : ({ [name]: value } as Record<K, string>);
}

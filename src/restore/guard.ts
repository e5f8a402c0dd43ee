import type { ScopeContents } from '../sources/kv-target.js';
import { ScopeNotEmptyError, UsageError } from '../util/errors.js';

/** What the guard was asked about: the scope, and how to name it in a message. */
export interface GuardSubject {
  target: string;
  /** The scope as text; '' is the whole keyspace. */
  scope: string;
  /** A native restore replaces the whole keyspace, whatever its scope. */
  native?: boolean;
  /** A drill never forces: its advice is to clear the scratch scope, not to --force. */
  drill?: boolean;
}

/**
 * The Portworx rule, the one place it is decided (DESIGN.md invariant 5): keys found in the scope and
 * no --force — stop, nothing written (exit 3, naming the count and a few keys); with --force, they are
 * replaced (after a safety backup). A scope that does not end with '/' is never deleted: deleting
 * "pwx/c1" would take "pwx/c10/…" with it. Returns whether the scope must be emptied first.
 */
export function guardScope(existing: ScopeContents, force: boolean, subject: GuardSubject): 'empty' | 'replace' {
  if (existing.count === 0) return 'empty';
  const examples = existing.examples.join(', ');
  if (!force) {
    throw new ScopeNotEmptyError(
      subject.drill
        ? `${subject.target}: the drill's scratch scope "${subject.scope}" already holds ${existing.count} keys (e.g. ${examples}); a drill never overwrites: empty it or point the drill elsewhere`
        : subject.native
        ? `${subject.target}: holds ${existing.count} keys (e.g. ${examples}) and a native restore replaces all of them; nothing was changed. Re-run with --force (a safety backup of them is taken first)`
        : `${subject.target}: ${existing.count} keys already exist under "${subject.scope}" (e.g. ${examples}); nothing was written. Re-run with --force to delete them and restore (a safety backup of them is taken first)`,
    );
  }
  if (!subject.native && subject.scope !== '' && !subject.scope.endsWith('/')) {
    throw new UsageError(
      `the scope "${subject.scope}" does not end with '/', so deleting it would also delete neighbouring keys such as "${subject.scope}2/…"; nothing was written. Re-run with --prefix ${subject.scope}/`,
    );
  }
  return 'replace';
}

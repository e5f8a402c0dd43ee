/** The documented exit codes of every kvdr command (DESIGN.md, "Exit codes"). */
export const ExitCode = {
  Ok: 0,
  /** Anything unexpected: a bug, a service failing mid-operation. */
  Failure: 1,
  /** Bad flags, bad configuration: the user can fix the invocation. */
  Usage: 2,
  /** A restore found keys in its scope and `--force` was not given. */
  ScopeNotEmpty: 3,
  /** An artifact's hash or structure did not check out. */
  Integrity: 4,
  /** An audit control failed. */
  ControlFailed: 5,
  /** Stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it); a restore has rolled back first. */
  Interrupted: 130,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

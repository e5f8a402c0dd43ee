import { ExitCode } from './exit-codes.js';

/**
 * An error the user can act on. Its message is one line naming what is wrong and what to do;
 * the CLI prints it without a stack trace and exits with {@link KvdrError.exitCode}.
 * Anything that is not a KvdrError is internal: exit 1, stack shown at debug level.
 */
export class KvdrError extends Error {
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode = ExitCode.Failure, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.exitCode = exitCode;
  }
}

/** Bad flags or arguments. */
export class UsageError extends KvdrError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.Usage, options);
  }
}

/** A configuration file that cannot be read, parsed or validated. */
export class ConfigError extends KvdrError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.Usage, options);
  }
}

/** A restore found keys under its scope and was not told to replace them. */
export class ScopeNotEmptyError extends KvdrError {
  constructor(message: string) {
    super(message, ExitCode.ScopeNotEmpty);
  }
}

/** An artifact whose hash or structure does not match what was recorded. */
export class IntegrityError extends KvdrError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.Integrity, options);
  }
}

/** Stopped by a signal (Ctrl-C, SIGTERM); the message says what was put back. */
export class InterruptedError extends KvdrError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.Interrupted, options);
  }
}

/** An audit control failed: the report was written, and this says which controls to look at. */
export class ControlFailedError extends KvdrError {
  constructor(message: string) {
    super(message, ExitCode.ControlFailed);
  }
}

/** A write-once object that already exists. */
export class ObjectExistsError extends KvdrError {
  constructor(readonly key: string) {
    super(`object ${key} already exists and artifacts are write-once; choose a new key`, ExitCode.Failure);
  }
}

/** An object the repository does not hold. */
export class ObjectNotFoundError extends KvdrError {
  constructor(readonly key: string) {
    super(`object ${key} not found in the repository`, ExitCode.Failure);
  }
}

/** A repository (bucket, directory) that cannot be reached or used; message says which and why. */
export class RepositoryError extends KvdrError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, ExitCode.Failure, options);
  }
}

/** Flattens any thrown value into one line, for logs and the CLI's last word. */
export function oneLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

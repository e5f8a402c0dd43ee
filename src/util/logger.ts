import { createRequire } from 'node:module';
import { pino, type Logger, type LevelWithSilent } from 'pino';
import type { PrettyOptions, PrettyStream } from 'pino-pretty';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export interface LoggerOptions {
  /** @defaultValue `KVDR_LOG_LEVEL` or `info` */
  level?: LevelWithSilent;
  /**
   * Human-readable lines instead of JSON.
   * @defaultValue true when stderr is a TTY
   */
  pretty?: boolean;
  /** @defaultValue stderr, so that stdout carries only command output (ids, tables, JSON) */
  destination?: NodeJS.WritableStream;
}

/** Secrets never reach a log line, whatever object they ride in on. */
const REDACT = [
  'password',
  'token',
  'secretAccessKey',
  'sessionToken',
  '*.password',
  '*.token',
  '*.secretAccessKey',
  '*.sessionToken',
  '*.*.password',
  '*.*.token',
];

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? (process.env['KVDR_LOG_LEVEL'] as LevelWithSilent | undefined) ?? 'info';
  const destination = options.destination ?? process.stderr;
  const usePretty = options.pretty ?? Boolean((destination as { isTTY?: boolean }).isTTY);
  const base = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name: 'kvdr' } };
  if (usePretty) {
    // In-process pretty printing: no worker thread, so nothing is lost when the CLI exits promptly.
    return pino(base, loadPretty()({ destination, sync: true, ignore: 'pid,hostname,name', translateTime: 'SYS:HH:MM:ss' }));
  }
  return pino(base, destination);
}

/**
 * pino-pretty (and its dependencies) load only for a terminal: a service or a job logging JSON never
 * holds them (about 1 MiB of heap a backup would carry for nothing).
 */
function loadPretty(): (options: PrettyOptions) => PrettyStream {
  return (createRequire(import.meta.url)('pino-pretty') as { default: (options: PrettyOptions) => PrettyStream }).default;
}

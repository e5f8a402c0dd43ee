import type { Command } from 'commander';
import { loadConfig, resolveConfigPath } from '../config/loader.js';
import type { KvdrConfig } from '../config/schema.js';
import { createLogger, type Logger } from '../util/logger.js';
import type { LevelWithSilent } from 'pino';

/** Options every kvdr command accepts (DESIGN.md, CLI contract). */
export interface GlobalOptions {
  config?: string;
  logLevel?: LevelWithSilent;
  json?: boolean;
}

/** What a command's action gets: output, logging, and the config loaded on first use. */
export interface CommandContext {
  readonly logger: Logger;
  readonly json: boolean;
  readonly configPath: string;
  config: () => Promise<KvdrConfig>;
  /** Command output (ids, tables, JSON) goes to stdout; logs go to stderr. */
  print: (text: string) => void;
}

/**
 * @param quietByDefault - log only warnings unless --log-level or KVDR_LOG_LEVEL says otherwise: a
 *   one-shot command whose outcome is its printed line (a restore) keeps a failure to that one line.
 */
export function contextFor(command: Command, quietByDefault = false): CommandContext {
  const options = command.optsWithGlobals<GlobalOptions>();
  const level = options.logLevel ?? (process.env['KVDR_LOG_LEVEL'] as LevelWithSilent | undefined) ?? (quietByDefault ? 'warn' : undefined);
  const logger = createLogger(level ? { level } : {});
  const configPath = resolveConfigPath(options.config);
  let loaded: Promise<KvdrConfig> | undefined;
  return {
    logger,
    json: options.json ?? false,
    configPath,
    config: () => (loaded ??= loadConfig(configPath)),
    print: (text) => {
      process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    },
  };
}

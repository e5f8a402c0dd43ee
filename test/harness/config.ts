import { checkReferences } from '../../src/config/references.js';
import { configSchema, type KvdrConfig } from '../../src/config/schema.js';
import { createLogger, type Logger } from '../../src/util/logger.js';

/** A validated config from a plain object, defaults filled in as the loader would. */
export function testConfig(raw: Record<string, unknown>): KvdrConfig {
  const config = configSchema.parse(raw);
  checkReferences(config);
  return config;
}

export const quietLogger: Logger = createLogger({ level: 'silent', pretty: false });

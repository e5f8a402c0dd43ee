import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../util/errors.js';
import { fieldPath } from './field-path.js';
import { interpolate } from './interpolate.js';
import { checkReferences } from './references.js';
import { configSchema, type KvdrConfig } from './schema.js';

export const DEFAULT_CONFIG_PATH = './config/kvdr.yaml';

/** Where the config comes from: `--config`, else `KVDR_CONFIG`, else ./config/kvdr.yaml. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env['KVDR_CONFIG'] ?? DEFAULT_CONFIG_PATH;
}

export async function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Promise<KvdrConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'not found' : `cannot be read (${code ?? String(err)})`;
    throw new ConfigError(
      `config file ${path} ${why}; pass --config <file> or set KVDR_CONFIG (every option is in config/kvdr.example.yaml)`,
    );
  }
  return parseConfig(text, path, env);
}

/** Parses, interpolates and validates one config text; every failure is one line naming the field. */
export function parseConfig(text: string, origin: string, env: NodeJS.ProcessEnv = process.env): KvdrConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  const yamlError = doc.errors[0];
  if (yamlError) {
    const line = yamlError.linePos?.[0];
    const where = line ? `${origin}:${line.line}:${line.col}` : origin;
    throw new ConfigError(`${where}: not valid YAML: ${yamlError.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')}`);
  }
  const raw: unknown = interpolate(doc.toJS() ?? {}, env);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`${origin}: ${issue ? describeIssue(issue) : 'invalid configuration'}`);
  }
  try {
    checkReferences(parsed.data);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`${origin}: ${err.message}`);
    throw err;
  }
  return parsed.data;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = fieldPath(issue.path);
  switch (issue.code) {
    case 'invalid_value':
      return `${path}: expected one of ${issue.values.map(String).join(', ')}`;
    case 'unrecognized_keys':
      return `${path}: unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')} (see config/kvdr.example.yaml)`;
    case 'invalid_union':
      if (issue.discriminator && 'options' in issue && issue.options) {
        return `${path}: expected one of ${issue.options.map(String).join(', ')}`;
      }
      return `${path}: ${issue.message}`;
    case 'invalid_type':
      if (issue.input === undefined) return `${path}: required`;
      return `${path}: expected ${issue.expected}`;
    default:
      return `${path}: ${issue.message}`;
  }
}

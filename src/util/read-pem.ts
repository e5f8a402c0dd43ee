import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

/** Reads a PEM file named by a config field; a missing file is a configuration error naming the field. */
export function readPem(path: string | undefined, field: string): Buffer | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(`${field}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

import { ConfigError } from '../util/errors.js';
import { fieldPath } from './field-path.js';

const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree; `$$` is a literal `$`.
 * Working on the tree rather than the text keeps the field path for errors and stops an environment
 * value from injecting YAML structure.
 */
export function interpolate(tree: unknown, env: NodeJS.ProcessEnv, path: PropertyKey[] = []): unknown {
  if (typeof tree === 'string') return interpolateString(tree, env, path);
  if (Array.isArray(tree)) return tree.map((item, i) => interpolate(item, env, [...path, i]));
  if (tree !== null && typeof tree === 'object') {
    return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, interpolate(v, env, [...path, k])]));
  }
  return tree;
}

function interpolateString(text: string, env: NodeJS.ProcessEnv, path: PropertyKey[]): string {
  return text.replace(REFERENCE, (match, variable: string | undefined, fallback: string | undefined) => {
    if (match === '$$') return '$';
    const value = env[variable as string];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    throw new ConfigError(
      `${fieldPath(path)}: environment variable ${variable} is not set; export it or write \${${variable}:-default}`,
    );
  });
}

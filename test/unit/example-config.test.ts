import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { configSchema } from '../../src/config/schema.js';

/**
 * Every option key path of a zod (v4) schema, dotted, with arrays transparent: `jobs.retention.keepLast`.
 * Wrappers (optional, default, prefault, nullable, pipe …) are looked through; union members are merged.
 */
function schemaPaths(schema: z.core.$ZodType, path = '', out = new Set<string>()): Set<string> {
  const def = (schema as z.core.$ZodTypes)._zod.def;
  switch (def.type) {
    case 'object':
      for (const [key, child] of Object.entries(def.shape)) {
        const childPath = path ? `${path}.${key}` : key;
        out.add(childPath);
        schemaPaths(child, childPath, out);
      }
      break;
    case 'array':
      schemaPaths(def.element, path, out);
      break;
    case 'union':
      for (const option of def.options) schemaPaths(option, path, out);
      break;
    case 'intersection':
      schemaPaths(def.left, path, out);
      schemaPaths(def.right, path, out);
      break;
    case 'pipe':
      schemaPaths(def.in, path, out);
      break;
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'nonoptional':
    case 'readonly':
    case 'catch':
      schemaPaths(def.innerType, path, out);
      break;
    case 'record':
    case 'lazy':
    case 'tuple':
      // Not used by the config schema; a new one needs a case here so its keys are checked.
      throw new Error(`${path || '<root>'}: the walker does not handle zod ${def.type} yet`);
    default:
      break; // a leaf: string, number, enum, literal, boolean …
  }
  return out;
}

/**
 * Key paths written in a YAML file, commented-out lines included (`# key:` at the key's indentation, as
 * the example writes optional settings), arrays transparent. Reads indentation only, so prose comments
 * need not be YAML (a sentence starts with a capital, an option never does); keys of a one-line flow mapping (`tls: {ca: …, cert: …}`) count too.
 */
function documentedPaths(text: string): Set<string> {
  const out = new Set<string>();
  const stack: { column: number; key: string }[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^(\s*)# ?/, '$1'); // uncomment: `    #   username: x` -> `      username: x`
    const match = /^(\s*)(- +)?([a-z][A-Za-z0-9]*):(?:\s|$)(.*)$/.exec(line); // options are camelCase
    if (!match) continue;
    const [, indent = '', dash = '', key = '', rest = ''] = match;
    const column = indent.length + dash.length;
    while (stack.length > 0 && (stack.at(-1)?.column ?? -1) >= column) stack.pop();
    stack.push({ column, key });
    const path = stack.map((s) => s.key).join('.');
    out.add(path);
    const flow = /^\{([^}]*)\}/.exec(rest.trim())?.[1];
    if (flow !== undefined) for (const [, inner] of flow.matchAll(/(?:^|,)\s*([A-Za-z][A-Za-z0-9]*):/g)) out.add(`${path}.${inner}`);
  }
  return out;
}

describe('config/kvdr.example.yaml', () => {
  const example = readFile(new URL('../../config/kvdr.example.yaml', import.meta.url), 'utf8');

  it('documents every option of the schema (commented-out lines count)', async () => {
    const documented = documentedPaths(await example);
    const options = [...schemaPaths(configSchema)];
    expect(options.length).toBeGreaterThan(60); // the walker really walked
    expect(options.filter((path) => !documented.has(path))).toEqual([]);
  });

  it('documents no option the schema does not have (a typo in a commented line would pass the parser)', async () => {
    const options = schemaPaths(configSchema);
    const unknown = [...documentedPaths(await example)].filter((path) => !options.has(path));
    expect(unknown, 'a misspelt option, or a prose comment line that starts with "word:" (reflow it)').toEqual([]);
  });

  it('finds the keys of commented-out blocks and flow mappings', () => {
    const paths = documentedPaths(
      ['a:', '  - name: x', '    # b:          # note: prose', '    #   c: 1', '    # d: {e: 1, f: 2}', '  # Prose: not a key', 'g: 1'].join('\n'),
    );
    expect([...paths].sort()).toEqual(['a', 'a.b', 'a.b.c', 'a.d', 'a.d.e', 'a.d.f', 'a.name', 'g']);
  });
});

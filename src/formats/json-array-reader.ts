import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';

export interface JsonArrayElement {
  value: unknown;
  /** 0-based position in the array. */
  index: number;
  /** Byte offset of the element's first byte in the input. */
  offset: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/**
 * Streams the objects of a top-level JSON array (`[{…},{…}]`) one at a time, with exact byte offsets
 * for errors. A small byte scanner finds where each element ends (tracking strings, escapes and nesting)
 * and JSON.parse decodes it, so memory holds one element whatever the file size. A JSON library
 * would parse as fast but cannot say where a malformed or truncated file went wrong.
 */
export async function* readJsonArray(input: Readable, label: string): AsyncIterable<JsonArrayElement> {
  type State = 'start' | 'element-or-end' | 'element' | 'comma-or-end' | 'done';
  let state: State = 'start';
  let offset = 0; // bytes consumed before the current chunk
  let index = 0;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let elementStart = 0;
  let parts: Buffer[] = [];
  const fail = (at: number, what: string): never => {
    throw new IntegrityError(`${label}: malformed JSON at byte ${at}: ${what}`);
  };

  for await (const raw of input) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw as string);
    let from = 0; // start of the current element's bytes within this chunk
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i] as number;
      if (state === 'element') {
        if (inString) {
          if (escaped) escaped = false;
          else if (b === BACKSLASH) escaped = true;
          else if (b === QUOTE) inString = false;
          continue;
        }
        if (b === QUOTE) inString = true;
        else if (b === OPEN_OBJECT || b === OPEN_ARRAY) depth++;
        else if (b === CLOSE_OBJECT || b === CLOSE_ARRAY) {
          depth--;
          if (depth === 0) {
            parts.push(chunk.subarray(from, i + 1));
            const text = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
            parts = [];
            let value: unknown;
            try {
              value = JSON.parse(text.toString('utf8'));
            } catch (err) {
              fail(elementStart, `element ${index} is not valid JSON (${(err as Error).message})`);
            }
            yield { value, index, offset: elementStart };
            index++;
            state = 'comma-or-end';
          }
        }
        continue;
      }
      if (isSpace(b)) continue;
      const at = offset + i;
      switch (state) {
        case 'start':
          if (b !== OPEN_ARRAY) fail(at, "expected '[' (a JSON array)");
          state = 'element-or-end';
          break;
        case 'element-or-end':
          if (b === CLOSE_ARRAY && index === 0) state = 'done';
          else if (b === OPEN_OBJECT) {
            state = 'element';
            depth = 1;
            elementStart = at;
            from = i;
          } else fail(at, `expected an object as element ${index}`);
          break;
        case 'comma-or-end':
          if (b === COMMA) state = 'element-or-end';
          else if (b === CLOSE_ARRAY) state = 'done';
          else fail(at, `expected ',' or ']' after element ${index - 1}`);
          break;
        case 'done':
          fail(at, 'unexpected data after the end of the array');
      }
    }
    if (state === 'element') parts.push(chunk.subarray(from));
    offset += chunk.length;
  }
  if ((state as State) !== 'done') {
    const where =
      state === 'start'
        ? 'before a JSON array started (the file is empty)'
        : state === 'element'
          ? `inside element ${index}, which starts at byte ${elementStart}`
          : index === 0
            ? "right after the opening '['"
            : `after element ${index - 1}`;
    throw new IntegrityError(`${label}: ends at byte ${offset} ${where}; the file is truncated`);
  }
}

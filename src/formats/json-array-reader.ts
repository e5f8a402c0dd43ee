import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { formatBytes } from '../util/table.js';
import { DEFAULT_MAX_RECORD_BYTES, type ReaderLimits } from './limits.js';
import { decodeUtf8 } from './text.js';

export interface JsonArrayOptions {
  /** A top-level `null` reads as an empty array: Go's json.Marshal writes a nil slice so. */
  nullIsEmpty?: boolean;
}

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
const NULL = Buffer.from('null');
const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/**
 * Streams the objects of a top-level JSON array (`[{…},{…}]`) one at a time, with exact byte offsets
 * for errors. A small byte scanner finds where each element ends (tracking strings, escapes and nesting)
 * and JSON.parse decodes it, so memory holds one element whatever the file size. A JSON library
 * would parse as fast but cannot say where a malformed or truncated file went wrong.
 *
 * Hostile input is refused in one line (IntegrityError) whatever its bytes: an element larger than
 * `limits.maxRecordBytes` (so memory stays bounded), bytes that are not UTF-8 (Node would turn them into
 * U+FFFD silently), anything JSON.parse rejects.
 */
export async function* readJsonArray(input: Readable, label: string, limits: ReaderLimits & JsonArrayOptions = {}): AsyncIterable<JsonArrayElement> {
  const maxBytes = limits.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES;
  type State = 'start' | 'null' | 'element-or-end' | 'element' | 'comma-or-end' | 'done';
  let literal = 0; // bytes of "null" matched so far
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
  const checkSize = (end: number): void => {
    if (end - elementStart > maxBytes) {
      throw new IntegrityError(
        `${label}: element ${index} at byte ${elementStart} is larger than ${maxBytes} bytes (${formatBytes(maxBytes)}); the file is damaged, or raise the record size limit`,
      );
    }
  };
  const parse = (text: Buffer): unknown => {
    const decoded = decodeUtf8(text);
    if ('invalidAt' in decoded) {
      throw new IntegrityError(`${label}: element ${index} at byte ${elementStart} is not valid UTF-8 (byte ${elementStart + decoded.invalidAt}); the file is damaged`);
    }
    try {
      return JSON.parse(decoded.text);
    } catch (err) {
      return fail(elementStart, `element ${index} is not valid JSON (${shortMessage(err)})`);
    }
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
            checkSize(offset + i + 1);
            parts.push(chunk.subarray(from, i + 1));
            const text = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
            parts = [];
            const value = parse(text);
            yield { value, index, offset: elementStart };
            index++;
            state = 'comma-or-end';
          }
        }
        continue;
      }
      if (state === 'null') {
        if (b !== NULL[literal]) fail(offset + i, "expected '[' (a JSON array) or null");
        if (++literal === NULL.length) state = 'done';
        continue;
      }
      if (isSpace(b)) continue;
      const at = offset + i;
      switch (state) {
        case 'start':
          if (b === NULL[0] && limits.nullIsEmpty) {
            state = 'null';
            literal = 1;
            break;
          }
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
    if (state === 'element') {
      checkSize(offset + chunk.length);
      parts.push(chunk.subarray(from));
    }
    offset += chunk.length;
  }
  const end = state as State; // the loop's narrowing does not survive the await
  if (end !== 'done') {
    const where =
      end === 'start'
        ? 'before a JSON array started (the file is empty)'
        : end === 'null'
          ? 'inside a null'
          : end === 'element'
            ? `inside element ${index}, which starts at byte ${elementStart}`
            : index === 0
              ? "right after the opening '['"
              : `after element ${index - 1}`;
    throw new IntegrityError(`${label}: ends at byte ${offset} ${where}; the file is truncated`);
  }
}

/** JSON.parse's message quotes the input, which may span lines or megabytes: keep the message one short line. */
function shortMessage(err: unknown): string {
  const text = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim();
  return text.length > 160 ? `${text.slice(0, 157)}...` : text;
}

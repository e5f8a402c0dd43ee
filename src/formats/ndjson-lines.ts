import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { readLines, type Line } from './line-reader.js';
import { decodeUtf8 } from './text.js';

/** A kvdr NDJSON artifact's lines, one at a time, each a JSON object, and errors that name the line. */
export interface NdjsonLines {
  /** The next line, or undefined at the end of the input. */
  next: () => Promise<Line | undefined>;
  /** The next line if it has already been read, else undefined (then `next` waits for it): `take() ?? await next()`. */
  take: () => Line | undefined;
  /** The line as a JSON object; damaged (UTF-8, JSON, not an object) is an IntegrityError naming it. */
  parse: (line: Line) => Record<string, unknown>;
  /** `<label>: line <n> <what>; the <kind> is damaged`. */
  damaged: (what: string) => IntegrityError;
  /** The number of the line last taken (1-based; 0 before the first). */
  lineNumber: () => number;
  /** Closes the input (a pass given up early). */
  close: () => Promise<void>;
}

/** Shared by the kvdr export and change segment readers: lines capped at `maxLineBytes`, strict UTF-8 and JSON. */
export function ndjsonLines(input: Readable, label: string, maxLineBytes: number, kind: string): NdjsonLines {
  const batches = readLines(input, label, maxLineBytes)[Symbol.asyncIterator]();
  let batch: Line[] = [];
  let at = 0;
  let lineNo = 0;
  const damaged = (what: string): IntegrityError => new IntegrityError(`${label}: line ${lineNo} ${what}; the ${kind} is damaged`);
  const take = (): Line | undefined => {
    const line = batch[at];
    if (line === undefined) return undefined;
    at++;
    lineNo = line.number;
    return line;
  };
  return {
    take,
    next: async () => {
      while (at >= batch.length) {
        const item = await batches.next();
        if (item.done) return undefined;
        batch = item.value;
        at = 0;
      }
      return take();
    },
    parse: (line) => {
      const text = decodeUtf8(line.bytes);
      if ('invalidAt' in text) throw damaged(`is not valid UTF-8 (its byte ${text.invalidAt})`);
      let value: unknown;
      try {
        value = JSON.parse(text.text);
      } catch {
        throw damaged('is not valid JSON');
      }
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw damaged('is not a JSON object');
      return value as Record<string, unknown>;
    },
    damaged,
    lineNumber: () => lineNo,
    close: async () => {
      await batches.return?.();
    },
  };
}

import type { Readable } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { formatBytes } from '../util/table.js';

export interface Line {
  /** The line's bytes without its '\n'; a view of the chunk it came in (never reused). */
  bytes: Buffer;
  /** 1-based. */
  number: number;
  /** False for a last line that the input ended without a '\n'. */
  terminated: boolean;
}

/**
 * Splits a byte stream at '\n', refusing (IntegrityError, naming the line number) a line longer than
 * `maxLineBytes` as soon as that many bytes of it have arrived: memory holds at most one line and one
 * chunk, whatever the input. readline has no such cap, and would buffer a newline-free file whole.
 * Lines inside a chunk are handed out as views of it, without a copy, all the lines a chunk completes
 * at once: a reader of a million short records then waits once per chunk, not once per line.
 */
export async function* readLines(input: Readable, label: string, maxLineBytes: number): AsyncIterable<Line[]> {
  let parts: Buffer[] = [];
  let partBytes = 0;
  let number = 0;
  const tooLong = (): IntegrityError =>
    new IntegrityError(`${label}: line ${number + 1} is longer than ${maxLineBytes} bytes (${formatBytes(maxLineBytes)}); the file is damaged, or raise the record size limit`);
  for await (const raw of input) {
    const chunk = Buffer.isBuffer(raw) ? raw : Buffer.from(raw as string);
    let from = 0;
    const lines: Line[] = [];
    for (let end = chunk.indexOf(0x0a, from); end !== -1; end = chunk.indexOf(0x0a, from)) {
      if (partBytes + end - from > maxLineBytes) throw tooLong();
      const piece = chunk.subarray(from, end);
      const bytes = parts.length === 0 ? piece : Buffer.concat([...parts, piece]);
      parts = [];
      partBytes = 0;
      from = end + 1;
      lines.push({ bytes, number: ++number, terminated: true });
    }
    if (lines.length > 0) yield lines;
    if (from < chunk.length) {
      partBytes += chunk.length - from;
      if (partBytes > maxLineBytes) throw tooLong();
      parts.push(chunk.subarray(from));
    }
  }
  if (partBytes > 0) yield [{ bytes: Buffer.concat(parts), number: ++number, terminated: false }];
}

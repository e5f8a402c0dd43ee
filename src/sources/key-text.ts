/** A key for a one-line message: JSON-quoted (control characters escaped, never a raw newline), long keys shortened. */
export function quoteKey(key: Buffer): string {
  const text = JSON.stringify(key.toString('utf8'));
  return text.length > 120 ? `${text.slice(0, 100)}…" (${key.length} bytes)` : text;
}

/** "1 key", "64 keys". */
export function keyCount(n: number): string {
  return `${n} ${n === 1 ? 'key' : 'keys'}`;
}

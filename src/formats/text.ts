/**
 * Strict checks for the text inside JSON artifacts. Node's own decoders never fail: `Buffer.from(s,
 * 'base64')` skips characters it does not know and `toString('utf8')` turns bad bytes into U+FFFD, so a
 * damaged artifact would read as different keys and values without a word. These say no instead.
 */

/**
 * Standard base64 as Go's encoding/base64 and Node write it: a multiple of 4 characters from the
 * standard alphabet, `=` padding only at the end (at most two), and the unused bits before the padding
 * zero (a writer never sets them, so a set one is damage). That is exactly the text that encodes back
 * to itself, which is how it is checked: decoding and re-encoding are native and run per record of a
 * million-key restore, ten times faster than a regular expression over the text.
 */
export function isStrictBase64(text: string): boolean {
  return decodeBase64Strict(text) !== undefined;
}

/** Decodes strict base64 (see {@link isStrictBase64}); undefined when it is not. */
export function decodeBase64Strict(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The bytes as text, or the offset of the first byte that is not valid UTF-8. */
export function decodeUtf8(bytes: Uint8Array): { text: string } | { invalidAt: number } {
  try {
    return { text: utf8.decode(bytes) };
  } catch {
    return { invalidAt: firstInvalidUtf8(bytes) };
  }
}

/** Only on the failure path: where a UTF-8 decoder gave up (RFC 3629 rules: no overlongs, surrogates or > U+10FFFF). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    const n = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    if (n < 0 || i + n >= bytes.length) return i; // not a lead byte, or cut off by the end
    const second = bytes[i + 1] as number;
    const low = b === 0xe0 ? 0xa0 : b === 0xf0 ? 0x90 : 0x80;
    const high = b === 0xed ? 0x9f : b === 0xf4 ? 0x8f : 0xbf;
    if (second < low || second > high) return i;
    for (let k = 2; k <= n; k++) if (((bytes[i + k] as number) & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return bytes.length;
}

/**
 * JSON text may escape a lone surrogate (`"\ud800"`), which no UTF-8 writer produces (Go writes
 * U+FFFD instead) and which has no UTF-8 bytes: a key holding one is damage, not data.
 */
export function hasLoneSurrogate(text: string): boolean {
  return /\p{Surrogate}/u.test(text);
}

import type { Readable } from 'node:stream';

/** Reads a stream whole. Only for small objects (manifests, events): artifacts are always streamed. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
  return Buffer.concat(parts);
}

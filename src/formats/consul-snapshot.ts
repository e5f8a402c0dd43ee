import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { IntegrityError } from '../util/errors.js';

/** Raft's SnapshotMeta, as Consul writes it to meta.json. */
export interface ConsulSnapshotMeta {
  Version?: number;
  ID?: string;
  Index?: number;
  Term?: number;
  Size?: number;
}

export interface ConsulSnapshotCheck {
  /** meta.json of the archive, once the stream has ended and checked out. */
  meta(): ConsulSnapshotMeta | undefined;
  /** sha256 per archive member, once checked. */
  sums(): Record<string, string> | undefined;
}

const MEMBERS = ['meta.json', 'state.bin', 'SHA256SUMS'] as const;

/**
 * Passes a Consul snapshot (gzip(tar(meta.json, state.bin, SHA256SUMS))) through unchanged while
 * unpacking it on the side: every member is hashed and compared with SHA256SUMS, and anything else in
 * the archive is refused, as Consul's own reader does. The end of the stream is held until the check
 * passes, so a corrupt archive fails before the repository sees its last byte.
 */
export function verifyConsulSnapshot(label = 'consul snapshot'): Transform & ConsulSnapshotCheck {
  const digests = new Map<string, string>();
  const contents = new Map<string, Buffer>();
  let failure: Error | undefined;
  let meta: ConsulSnapshotMeta | undefined;
  let sums: Record<string, string> | undefined;

  const parser = new Parser({
    strict: true,
    // Consul compresses well-structured state; the ratio guard is meant for extraction to disk.
    maxDecompressionRatio: Number.POSITIVE_INFINITY,
    onReadEntry: (entry: ReadEntry) => {
      const name = entry.path;
      if (!(MEMBERS as readonly string[]).includes(name) || digests.has(name)) {
        failure ??= new IntegrityError(`${label}: unexpected archive member "${name}"; this is not a Consul snapshot`);
        entry.resume();
        return;
      }
      const hash = createHash('sha256');
      const small: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        if (name !== 'state.bin') small.push(chunk);
      });
      entry.on('end', () => {
        digests.set(name, hash.digest('hex'));
        if (name !== 'state.bin') contents.set(name, Buffer.concat(small));
      });
    },
  });
  const parsed = new Promise<void>((resolve, reject) => {
    parser.on('end', resolve);
    parser.on('close', resolve);
    parser.on('error', reject);
    parser.on('abort', reject);
    parser.on('warn', (code: string, message: string) => reject(new Error(`${code}: ${message}`)));
  });
  parsed.catch(() => undefined);

  const transform = new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      if (failure) return done(failure);
      const more = parser.write(chunk);
      if (more) done(null, chunk);
      else parser.once('drain', () => done(null, chunk));
    },
    flush(done: TransformCallback) {
      parser.end();
      parsed.then(
        () => {
          try {
            ({ meta, sums } = check());
            done();
          } catch (err) {
            done(err as Error);
          }
        },
        (err: unknown) => done(new IntegrityError(`${label}: the archive is damaged or cut short (${(err as Error).message})`)),
      );
    },
  });

  function check(): { meta: ConsulSnapshotMeta; sums: Record<string, string> } {
    if (failure) throw failure;
    const missing = MEMBERS.filter((m) => !digests.has(m));
    if (missing.length > 0) throw new IntegrityError(`${label}: archive lacks ${missing.join(', ')}; the stream was cut short or is not a Consul snapshot`);
    const listed = parseSums(contents.get('SHA256SUMS') ?? Buffer.alloc(0));
    for (const name of ['meta.json', 'state.bin']) {
      const want = listed[name];
      const got = digests.get(name);
      if (want === undefined) throw new IntegrityError(`${label}: SHA256SUMS has no entry for ${name}`);
      if (want !== got) {
        throw new IntegrityError(`${label}: SHA256SUMS mismatch for ${name} (archive says ${want.slice(0, 16)}…, content hashes to ${got?.slice(0, 16) ?? '?'}…); the snapshot is corrupt and was not stored`);
      }
    }
    let parsedMeta: ConsulSnapshotMeta;
    try {
      parsedMeta = JSON.parse((contents.get('meta.json') ?? Buffer.alloc(0)).toString('utf8')) as ConsulSnapshotMeta;
    } catch {
      throw new IntegrityError(`${label}: meta.json is not valid JSON`);
    }
    return { meta: parsedMeta, sums: listed };
  }

  return Object.assign(transform, { meta: () => meta, sums: () => sums });
}

/** `SHA256SUMS` lines are `<hex>  <name>`, in any order. */
function parseSums(text: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.toString('utf8').split('\n')) {
    const match = /^([0-9a-f]{64})\s+(\S+)$/.exec(line.trim());
    if (match) out[match[2] as string] = match[1] as string;
  }
  return out;
}

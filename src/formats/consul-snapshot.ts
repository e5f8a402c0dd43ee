import { createHash, type Hash } from 'node:crypto';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { IntegrityError, oneLine } from '../util/errors.js';
import { formatBytes } from '../util/table.js';
import { DEFAULT_MAX_INFLATED_BYTES, GzipDamageError, inflate } from './inflate.js';
import type { ReaderLimits } from './limits.js';

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
/** meta.json is a few hundred bytes, SHA256SUMS two lines: these are held in memory, so capped. */
const SMALL_MEMBER_BYTES = 1024 ** 2;
const COMPRESSED_MAGIC = [Buffer.from([0x1f, 0x8b]), Buffer.from([0x28, 0xb5, 0x2f, 0xfd])];

/**
 * The members of a Consul snapshot's tar (inflated), checked as it streams: only regular files named
 * meta.json, state.bin and SHA256SUMS, each once, each declaring no more than the cap (refused from its
 * header, before its bytes are read); a traversal path, a link or any other member is refused, as
 * Consul's own reader refuses extra members. Each member is hashed; state.bin's bytes go to `onState`
 * as they arrive. Everything is synchronous: `write` returns once the chunk is parsed and throws the
 * first refusal, so no failure can be left pending.
 */
export class SnapshotArchive {
  private readonly parser: Parser;
  private readonly digests = new Map<string, string>();
  private readonly small = new Map<string, Buffer[]>();
  private readonly started = new Set<string>();
  private failure: IntegrityError | undefined;
  private head = Buffer.alloc(0);
  /** Bytes written so far; where the members (headers and padded data) end; the last non-zero byte past them. */
  private offset = 0;
  private endOfMembers = 0;
  private lastNonZero = -1;

  /**
   * @param outcome ends a SHA256SUMS mismatch: what became of the snapshot ("was not stored").
   */
  constructor(
    private readonly label: string,
    private readonly maxBytes: number,
    private readonly onState?: (chunk: Buffer) => void,
    private readonly outcome?: string,
  ) {
    this.parser = new Parser({
      strict: true,
      // The inflated bytes are capped by inflate(); tar's ratio guard would only add a second opinion.
      maxDecompressionRatio: Number.POSITIVE_INFINITY,
      onReadEntry: (entry: ReadEntry) => this.entry(entry),
    });
    this.parser.on('error', (err: Error) => this.fail(`the tar archive inside is damaged (${oneLine(err)})`));
    this.parser.on('abort', (err: Error) => this.fail(`the tar archive inside is damaged (${oneLine(err)})`));
  }

  write(chunk: Buffer): void {
    if (this.head.length < 4) {
      // tar would inflate a compressed tar inside on its own, without a cap: a snapshot never holds one.
      this.head = Buffer.concat([this.head, chunk.subarray(0, 4)]);
      if (COMPRESSED_MAGIC.some((magic) => this.head.length >= magic.length && this.head.subarray(0, magic.length).equals(magic))) {
        this.fail('the archive inside is compressed again; this is not a Consul snapshot');
      }
    }
    this.throwIfFailed();
    try {
      this.parser.write(chunk);
    } catch (err) {
      this.fail(`the tar archive inside is damaged (${oneLine(err)})`);
    }
    this.throwIfFailed();
    // Past the members only zero blocks may follow. tar takes a damaged end-of-archive block for one
    // (or skips what follows it), Consul's reader refuses it: so does this, or verify would pass an
    // archive that `consul snapshot restore` rejects. Headers are parsed by now, so only bytes past
    // the members known so far need a look.
    for (let i = chunk.length - 1; i >= Math.max(0, this.endOfMembers - this.offset); i--) {
      if (chunk[i] !== 0) {
        this.lastNonZero = this.offset + i;
        break;
      }
    }
    this.offset += chunk.length;
  }

  /** After the last chunk: every member present and whole, SHA256SUMS matching, meta.json JSON. */
  end(): { meta: ConsulSnapshotMeta; sums: Record<string, string> } {
    this.throwIfFailed();
    try {
      this.parser.end();
    } catch (err) {
      this.fail(`the tar archive inside is damaged (${oneLine(err)})`);
    }
    this.throwIfFailed();
    const missing = MEMBERS.filter((m) => !this.digests.has(m));
    if (missing.length > 0) throw this.refusal(`archive lacks ${missing.join(', ')}; the stream was cut short or is not a Consul snapshot`);
    if (this.lastNonZero >= this.endOfMembers) {
      throw this.refusal(`the tar archive inside has data at byte ${this.lastNonZero}, after its last member (which ends at byte ${this.endOfMembers}); the snapshot is damaged`);
    }
    const listed = this.parseSums(Buffer.concat(this.small.get('SHA256SUMS') ?? []));
    for (const name of ['meta.json', 'state.bin']) {
      const want = listed[name];
      const got = this.digests.get(name);
      if (want === undefined) throw this.refusal(`SHA256SUMS has no entry for ${name}; the snapshot is damaged`);
      if (want !== got) {
        throw this.refusal(`SHA256SUMS mismatch for ${name} (archive says ${want.slice(0, 16)}…, content hashes to ${got?.slice(0, 16) ?? '?'}…); the snapshot is corrupt${this.outcome ? ` and ${this.outcome}` : ''}`);
      }
    }
    let meta: unknown;
    try {
      meta = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(this.small.get('meta.json') ?? [])));
    } catch {
      throw this.refusal('meta.json is not valid JSON');
    }
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw this.refusal('meta.json is not a JSON object; the snapshot is damaged');
    return { meta: meta, sums: listed };
  }

  private entry(entry: ReadEntry): void {
    if (this.failure) return;
    const name = entry.path;
    const shown = JSON.stringify(name.length > 80 ? `${name.slice(0, 77)}...` : name);
    if (name.startsWith('/') || /^[A-Za-z]:/.test(name) || name.split(/[\\/]/).includes('..')) {
      return this.fail(`archive member ${shown} has an absolute or parent-directory path; refused (a Consul snapshot holds meta.json, state.bin and SHA256SUMS only)`);
    }
    if (entry.type !== 'File' && entry.type !== 'OldFile') return this.fail(`archive member ${shown} is a ${entry.type}, not a regular file; refused as not a Consul snapshot`);
    if (!(MEMBERS as readonly string[]).includes(name)) return this.fail(`unexpected archive member ${shown}; this is not a Consul snapshot`);
    if (this.started.has(name)) return this.fail(`archive member ${name} appears twice; the snapshot is damaged`);
    this.started.add(name);
    const size = entry.size ?? 0;
    const cap = name === 'state.bin' ? this.maxBytes : SMALL_MEMBER_BYTES;
    if (size > cap) {
      return this.fail(`archive member ${name} declares ${size} bytes, more than the ${cap}-byte (${formatBytes(cap)}) cap; damaged or hostile, refused before reading it (raise --max-inflated-bytes if it is real)`);
    }
    this.endOfMembers += 512 + Math.ceil(size / 512) * 512; // header, then data padded to a block
    const hash: Hash = createHash('sha256');
    const held: Buffer[] = [];
    if (name !== 'state.bin') this.small.set(name, held);
    entry.on('data', (chunk: Buffer) => {
      if (this.failure) return;
      hash.update(chunk);
      if (name === 'state.bin') this.onState?.(chunk);
      else held.push(chunk);
    });
    entry.on('end', () => this.digests.set(name, hash.digest('hex')));
  }

  /** `SHA256SUMS` lines are `<hex>  <name>\n` (Go's "%x  %s\n"), in any order. */
  private parseSums(text: Buffer): Record<string, string> {
    const out: Record<string, string> = {};
    const lines = text.toString('latin1').split('\n');
    if (lines.pop() !== '') throw this.refusal('SHA256SUMS does not end with a newline; the snapshot is damaged');
    for (const [i, line] of lines.entries()) {
      const match = /^([0-9a-f]{64}) {2}(meta\.json|state\.bin)$/.exec(line);
      if (!match || (match[2] as string) in out) throw this.refusal(`line ${i + 1} of SHA256SUMS is not "<sha256>  <member>" for meta.json or state.bin, once each; the snapshot is damaged`);
      out[match[2] as string] = match[1] as string;
    }
    return out;
  }

  private fail(what: string): void {
    this.failure ??= this.refusal(what);
  }

  private refusal(what: string): IntegrityError {
    return new IntegrityError(`${this.label}: ${what}`);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}

/**
 * Passes a Consul snapshot (gzip(tar(meta.json, state.bin, SHA256SUMS))) through unchanged while
 * inflating it on the side (capped at `limits.maxInflatedBytes`) and checking it as {@link SnapshotArchive}
 * does. The end of the stream is held until the check passes, so a corrupt archive fails before the
 * repository sees its last byte. `outcome` ends a SHA256SUMS mismatch: what became of the snapshot.
 */
export function verifyConsulSnapshot(label = 'consul snapshot', limits: ReaderLimits = {}, outcome = 'was not stored'): Transform & ConsulSnapshotCheck {
  const maxBytes = limits.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES;
  const archive = new SnapshotArchive(label, maxBytes, undefined, outcome);
  const side = new PassThrough();
  let failure: Error | undefined;
  let meta: ConsulSnapshotMeta | undefined;
  let sums: Record<string, string> | undefined;
  const checked = (async () => {
    for await (const chunk of inflate(side, { gzip: true, maxBytes, label })) archive.write(chunk as Buffer);
    ({ meta, sums } = archive.end());
  })().catch((err: unknown) => {
    failure = archiveFailure(label, err);
    side.destroy();
    throw failure;
  });
  checked.catch(() => undefined);

  const transform = new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      if (failure) return done(failure);
      if (side.write(chunk)) return done(null, chunk);
      // Wait for the side to take more, or to fail (then it never will).
      let called = false;
      const go = (): void => {
        if (called) return;
        called = true;
        side.off('drain', go);
        if (failure) done(failure);
        else done(null, chunk);
      };
      side.on('drain', go);
      checked.then(undefined, go);
    },
    flush(done: TransformCallback) {
      if (failure) return done(failure);
      side.end();
      checked.then(
        () => done(),
        (err: Error) => done(err),
      );
    },
  });
  return Object.assign(transform, { meta: () => meta, sums: () => sums });
}

/** How a failure to read a snapshot's archive is told: damaged gzip is "damaged or cut short", as Consul's own tools say. */
export function archiveFailure(label: string, err: unknown): IntegrityError {
  if (err instanceof GzipDamageError) return new IntegrityError(`${label}: the archive is damaged or cut short (${err.detail})`, { cause: err });
  if (err instanceof IntegrityError) return err;
  return new IntegrityError(`${label}: not a Consul snapshot (${oneLine(err)})`, { cause: err });
}

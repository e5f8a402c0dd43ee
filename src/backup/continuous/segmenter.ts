import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeSegment, type ChangeEvent, type SegmentHeader } from '../../formats/change-segment.js';
import { compressBuffer } from '../../formats/compression.js';
import type { Compression } from '../../formats/inflate.js';
import { segmentKey } from '../../repository/layout.js';
import type { ObjectStore } from '../../repository/object-store.js';
import type { ChangeBatch } from '../../sources/change-feed.js';
import { KvdrError, ObjectExistsError, oneLine } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';

/** Where a chain stands: the last revision its segments cover and the chain value there. */
export interface ChainTip {
  job: string;
  base: string;
  baseRevision: number;
  source: SegmentHeader['source'];
  /** The scope prefix, base64. */
  scope: string;
  /** The last revision covered (the base's revision before any segment). */
  last: number;
  chain: string;
}

export interface SegmenterOptions {
  store: ObjectStore;
  tip: ChainTip;
  compression: Compression;
  /** A local directory for segments not yet in the repository (one per job). */
  spoolDir: string;
  /** Flush a segment at this size. @defaultValue 8 MiB */
  segmentBytes?: number;
  /** Most bytes the spool may hold before the job must give up continuity. @defaultValue 1 GiB */
  spoolMaxBytes?: number;
  logger: Logger;
  /** Told after each segment reaches the repository. */
  onDurable?: (segment: { key: string; first: number; last: number; events: number; bytes: number }) => void;
  /** @defaultValue Date.now */
  now?: () => number;
  /** First delay between upload attempts while the repository fails; doubles up to 30 s. @defaultValue 1000 */
  retryMs?: number;
}

/** Another writer holds the segment key this one needed: this replica is no longer the chain's writer. */
export class ChainConflictError extends KvdrError {
  constructor(readonly key: string) {
    super(`change segment ${key} was written by another replica; this one stops writing the chain and resumes from the repository`);
    this.name = 'ChainConflictError';
  }
}

/** The local spool outgrew its limit while the repository could not be reached. */
export class SpoolFullError extends KvdrError {
  constructor(readonly bytes: number) {
    super(`the local spool holds ${bytes} bytes of change segments the repository has not taken; continuity is given up and a new base follows once it is back`);
    this.name = 'SpoolFullError';
  }
}

/**
 * Cuts the change stream into segments and ships them, in order, to the repository:
 *
 *   batch → pending events → (every segmentSeconds, or at segmentBytes) encode → compress → spool file → upload
 *
 * A segment is on local disk before it is uploaded, so a repository outage only grows the spool
 * (bounded by spoolMaxBytes). Uploads are strictly in revision order and write-once by first revision:
 * a key already taken means another replica writes the chain now (ChainConflictError).
 */
export class Segmenter {
  private pending: ChangeEvent[] = [];
  private pendingBytes = 0;
  /** Highest revision delivered so far: the next segment covers up to here. */
  private upTo: number;
  private tip: ChainTip;
  /** The repository's view: last revision uploaded, and the oldest change not yet uploaded. */
  private durable: number;
  private readonly waiting: { key: string; path: string; first: number; last: number; events: number; bytes: number; oldestAt: number }[] = [];
  private uploading: Promise<void> | undefined;
  private failure: Error | undefined;
  private spoolBytes = 0;
  private lastUploadError: string | undefined;

  constructor(private readonly options: SegmenterOptions) {
    this.tip = { ...options.tip };
    this.upTo = options.tip.last;
    this.durable = options.tip.last;
  }

  /** Revisions covered by uploaded segments, and how old the oldest change not yet uploaded is. */
  state(): { durableRevision: number; receivedRevision: number; lagSeconds: number; spoolBytes: number; uploadError?: string } {
    const now = (this.options.now ?? Date.now)();
    const oldest = Math.min(...this.waiting.map((w) => w.oldestAt), ...(this.pending.length > 0 ? [(this.pending[0] as ChangeEvent).at] : []));
    return {
      durableRevision: this.durable,
      receivedRevision: this.upTo,
      lagSeconds: Number.isFinite(oldest) ? Math.max(0, (now - oldest) / 1000) : 0,
      spoolBytes: this.spoolBytes,
      ...(this.lastUploadError ? { uploadError: this.lastUploadError } : {}),
    };
  }

  /** When the newest batch added was received (the chain holds every change observed up to then). */
  observedUpTo(): number | undefined {
    return this.lastBatchAt;
  }

  /** The chain as it will stand once everything spooled is uploaded. */
  currentTip(): ChainTip {
    return { ...this.tip };
  }

  /** Takes a batch; flushes at once when the segment is full. Throws an upload conflict or a full spool. */
  async add(batch: ChangeBatch): Promise<void> {
    this.check();
    if (batch.revision <= this.upTo) return; // already have it (a replayed response)
    for (const event of batch.events) {
      if (event.revision <= this.tip.last) continue;
      this.pending.push(event);
      this.pendingBytes += 64 + event.key.length * 1.4 + (event.op === 'put' ? event.value.length * 1.4 : 0);
    }
    this.upTo = batch.revision;
    this.lastBatchAt = batch.at;
    if (this.pendingBytes >= (this.options.segmentBytes ?? 8 * 1024 ** 2)) await this.flush();
  }

  /** Cuts a segment of what is pending (nothing when no change is pending). */
  async flush(): Promise<void> {
    this.check();
    if (this.pending.length === 0) return;
    const events = this.pending;
    const first = this.tip.last + 1;
    const last = this.upTo;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      await this.spool(events, first, last);
    } catch (err) {
      // The events are out of memory and in no segment: this segmenter must not cut another one over
      // the hole. The job resumes from the repository, and the source replays them.
      this.failure = err instanceof Error ? err : new Error(String(err));
      throw this.failure;
    }
    if (this.spoolBytes > (this.options.spoolMaxBytes ?? 1024 ** 3)) throw new SpoolFullError(this.spoolBytes);
  }

  private async spool(events: ChangeEvent[], first: number, last: number): Promise<void> {
    const { bytes, chain } = encodeSegment(
      {
        job: this.tip.job,
        source: this.tip.source,
        scope: this.tip.scope,
        base: this.tip.base,
        baseRevision: this.tip.baseRevision,
        first,
        last,
        previous: this.tip.chain,
        durableAt: new Date(this.lastBatchAt ?? (this.options.now ?? Date.now)()).toISOString(),
      },
      events,
    );
    const stored = await compressBuffer(bytes, this.options.compression, `job ${this.tip.job}`);
    const key = segmentKey(this.tip.job, this.tip.base, first);
    await mkdir(this.options.spoolDir, { recursive: true });
    const path = join(this.options.spoolDir, `${this.tip.base}.${String(first).padStart(20, '0')}.seg`);
    // Written under a temporary name and renamed: a crash never leaves half a segment to upload.
    await writeFile(`${path}.tmp`, stored);
    await rename(`${path}.tmp`, path);
    this.tip = { ...this.tip, last, chain };
    this.spoolBytes += stored.length;
    this.waiting.push({ key, path, first, last, events: events.length, bytes: stored.length, oldestAt: events[0]?.at ?? this.lastBatchAt ?? Date.now() });
    this.kick();
  }

  /**
   * Cuts what is pending, and when the log reaches past the last segment without a change in scope (a
   * quiet scope the source confirmed up to a later revision), an empty segment up to there: the chain
   * then ends exactly where a new base starts.
   */
  async seal(): Promise<void> {
    await this.flush();
    this.check();
    if (this.upTo > this.tip.last) await this.spool([], this.tip.last + 1, this.upTo);
  }

  /** Resolves once every spooled segment is in the repository (or fails with why it cannot be). */
  async drain(): Promise<void> {
    while (this.waiting.length > 0 || this.uploading) {
      this.check();
      // Stopped: nothing will upload any more, and awaiting an absent upload would spin the event loop.
      if (this.stopped && !this.uploading) return;
      this.kick();
      await this.uploading;
    }
    this.check();
  }

  /**
   * Stops uploading, at once: a backoff between failed attempts ends now rather than after up to 30 s
   * (which would hold a stopping service open that long). What is spooled stays on disk for the next
   * start to pick up.
   */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private stopped = false;
  /** Ends the current backoff early; set while uploadAll waits between attempts. */
  private wake: (() => void) | undefined;
  /** When the newest batch added was received: a segment holds every change observed up to then. */
  private lastBatchAt: number | undefined;

  private check(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private kick(): void {
    if (this.uploading || this.stopped) return;
    this.uploading = this.uploadAll().finally(() => (this.uploading = undefined));
  }

  private async uploadAll(): Promise<void> {
    let delay = this.options.retryMs ?? 1000;
    while (this.waiting.length > 0 && !this.stopped) {
      const next = this.waiting[0] as (typeof this.waiting)[number];
      try {
        const body = await readFile(next.path);
        await this.options.store.put(next.key, body, { contentLength: body.length, contentType: 'application/x-ndjson' });
      } catch (err) {
        if (err instanceof ObjectExistsError) {
          this.failure = new ChainConflictError(next.key);
          return;
        }
        this.lastUploadError = oneLine(err);
        this.options.logger.warn({ key: next.key }, `change segment upload failed, kept in the spool and retried: ${this.lastUploadError}`);
        await this.backoff(delay);
        delay = Math.min(delay * 2, 30_000);
        continue;
      }
      delay = this.options.retryMs ?? 1000;
      this.lastUploadError = undefined;
      this.waiting.shift();
      this.spoolBytes -= next.bytes;
      this.durable = next.last;
      await rm(next.path, { force: true });
      this.options.onDurable?.({ key: next.key, first: next.first, last: next.last, events: next.events, bytes: next.bytes });
    }
  }

  private backoff(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    }).finally(() => (this.wake = undefined));
  }
}

/** Segments a previous process spooled for a chain but never uploaded, oldest first. */
export async function spooledSegments(spoolDir: string, base: string): Promise<{ path: string; first: number; bytes: number }[]> {
  const names = await readdir(spoolDir).catch(() => [] as string[]);
  const out: { path: string; first: number; bytes: number }[] = [];
  for (const name of names.sort()) {
    const match = /^(.+)\.(\d{20})\.seg$/.exec(name);
    if (!match || match[1] !== base) continue;
    const path = join(spoolDir, name);
    out.push({ path, first: Number(match[2]), bytes: (await stat(path)).size });
  }
  return out;
}

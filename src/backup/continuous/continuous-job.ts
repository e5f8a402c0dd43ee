import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContinuousConfig, JobConfig, KvdrConfig, RepositoryConfig, SourceConfig } from '../../config/schema.js';
import { continuousSchema } from '../../config/schema.js';
import { sourceScope } from '../../config/scope.js';
import type { ChangeEvent } from '../../formats/change-segment.js';
import type { Manifest } from '../../repository/manifest.js';
import type { ObjectStore } from '../../repository/object-store.js';
import { openStore } from '../../repository/open-store.js';
import { mergeJobChains } from './merge.js';
import { takeChainBase, type BaseOptions, type TakenBase } from './base.js';
import type { ContinuousState } from './state.js';

export type { ContinuousState } from './state.js';
import { CompactedError, type ChangeBatch, type ChangeFeed } from '../../sources/change-feed.js';
import { consulAccess } from '../../sources/consul/connect.js';
import { pollChanges } from '../../sources/consul/change-feed.js';
import { connectEtcd } from '../../sources/etcd/connect.js';
import { watchChanges } from '../../sources/etcd/change-feed.js';
import { KvdrError, oneLine } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import { chainKeys, resumeChain } from './resume.js';
import { ChainConflictError, Segmenter, SpoolFullError, type ChainTip } from './segmenter.js';

export interface ContinuousJobOptions {
  config: KvdrConfig;
  job: JobConfig;
  logger: Logger;
  /** Appends an event to the audit trail (bases as `backup`, gaps as `continuity-gap`). */
  record: (type: 'backup' | 'continuity-gap' | 'segments-merged', subject: Record<string, unknown>) => Promise<void>;
  /** @defaultValue Date.now */
  now?: () => number;
  /** Delay before following again after a failure; doubles up to 30 s. @defaultValue 1000 */
  retryMs?: number;
}


/**
 * One etcd-continuous or consul-continuous job on the replica that leads: a base export, then the
 * scope's changes as segments, for as long as it runs.
 *
 *   resume the newest chain (its tail segment says where it stands) — or take a base
 *   → follow the source from the chain's last revision + 1 → Segmenter → repository
 *
 * It never pretends continuity: when the source has compacted the revision it needs, or the spool
 * overflowed while the repository was away, it takes a new base at once and records a
 * `continuity-gap` event naming the revisions no chain covers.
 */
export class ContinuousJob {
  private readonly settings: ContinuousConfig;
  private readonly source: SourceConfig;
  private readonly repository: RepositoryConfig;
  private readonly store: ObjectStore;
  private stopping = false;
  private running: Promise<void> | undefined;
  private segmenter: Segmenter | undefined;
  private feed: ChangeFeed | undefined;
  private fault: Error | undefined;
  /** Serialises the segmenter's adds, timed flushes and rebases. */
  private queue: Promise<unknown> = Promise.resolve();
  private counters = { segments: 0, segmentBytes: 0, gaps: 0 };
  private lastError: string | undefined;
  /** Consul: the scope's keys at the tip, to diff the next answer against. */
  private keys: Set<string> | undefined;
  private wake: (() => void) | undefined;
  private mergeTimer: NodeJS.Timeout | undefined;
  private durableAt: number | undefined;
  /** Segmenters of chains a rebase ended, still uploading their last segments. */
  private retired: Segmenter[] = [];
  /** Tells one run of this job from another, for counters that restart with it. */
  readonly epoch = Date.now();
  private merging = false;

  constructor(private readonly options: ContinuousJobOptions) {
    const { config, job } = options;
    this.settings = job.continuous ?? continuousSchema.parse({});
    this.source = config.sources.find((s) => s.name === job.source) as SourceConfig;
    this.repository = config.repositories.find((r) => r.name === job.repository) as RepositoryConfig;
    this.store = openStore(this.repository);
  }

  get name(): string {
    return this.options.job.name;
  }

  start(): void {
    this.running ??= this.loop();
    if (this.settings.mergeAfterMinutes > 0 && !this.mergeTimer) {
      // Often enough that nothing waits much past its age; never more than every 5 minutes.
      const every = Math.min(Math.max(this.settings.mergeAfterMinutes * 30_000, 1000), 300_000);
      this.mergeTimer = setInterval(() => void this.mergeOld(), every);
      this.mergeTimer.unref();
    }
  }

  /** Merges old small segments of every chain of the job (see mergeSegments); one pass at a time. */
  async mergeOld(): Promise<number> {
    if (this.merging || this.stopping) return 0;
    this.merging = true;
    let retired = 0;
    try {
      retired = await mergeJobChains({
        store: this.store,
        job: this.name,
        olderThanMs: this.settings.mergeAfterMinutes * 60_000,
        targetBytes: this.settings.mergeTargetBytes,
        compression: this.options.job.compression,
        record: (subject) => this.options.record('segments-merged', subject),
        ...(this.options.now ? { now: this.options.now } : {}),
      });
    } catch (err) {
      this.options.logger.warn(`${this.name}: merging old segments failed (the chain is unchanged; retried later): ${oneLine(err)}`);
    } finally {
      this.merging = false;
    }
    return retired;
  }

  /** Stops following: cuts a last segment of what is pending and uploads what it can, then returns. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.mergeTimer) clearInterval(this.mergeTimer);
    this.wake?.();
    await this.feed?.close();
    await this.running;
    await this.store.close();
  }

  state(): ContinuousState {
    const segmenter = this.segmenter?.state();
    const following = this.feed?.connected() ?? false;
    if (segmenter && following) this.durableAt = (this.options.now ?? Date.now)() - segmenter.lagSeconds * 1000;
    return {
      job: this.name,
      epoch: this.epoch,
      following,
      ...(this.segmenter ? { base: this.segmenter.currentTip().base } : {}),
      ...(segmenter ? { durableRevision: segmenter.durableRevision, receivedRevision: segmenter.receivedRevision } : {}),
      lagSeconds: segmenter?.lagSeconds ?? 0,
      ...(this.durableAt !== undefined ? { durableAt: this.durableAt } : {}),
      spoolBytes: segmenter?.spoolBytes ?? 0,
      ...this.counters,
      ...(this.lastError ?? segmenter?.uploadError ? { lastError: this.lastError ?? segmenter?.uploadError } : {}),
    };
  }

  /**
   * Starts a new chain now (the job's schedule): a base at the revision the change log has reached
   * (etcd reads the export at exactly that revision, so the old chain ends where the new one starts),
   * and the changes after it go to the new chain.
   */
  async rebase(): Promise<Manifest> {
    if (!this.segmenter) throw new KvdrError(`job ${this.name} is not following its source right now; it takes a base when it resumes`);
    return this.serial(async () => {
      const old = this.segmenter as Segmenter;
      await old.seal();
      const reached = old.currentTip().last;
      let taken: TakenBase;
      if (this.source.type === 'etcd') {
        taken = await this.takeBase({ revision: reached, ...(old.observedUpTo() !== undefined ? { pointAt: old.observedUpTo() as number } : {}) });
      } else {
        // Consul cannot read the past: the base is read now, at a later index. What changed in between is
        // read off the base itself (a ModifyIndex past the old chain's end is a put; a key gone, a delete),
        // so the old chain ends exactly at the new base's index, as the feed would have seen it.
        const before = new Set(this.keys);
        const puts: ChangeEvent[] = [];
        const at = Date.now();
        taken = await this.takeBase({
          observe: (record) => {
            if ((record.modRevision ?? 0) > reached) {
              puts.push({ op: 'put', key: record.key, value: record.value, revision: record.modRevision ?? 0, createRevision: record.createRevision ?? 0, version: 0, lease: '0', flags: record.flags ?? 0, at });
            }
          },
        });
        const after = taken.keys ?? new Set<string>();
        const index = taken.tip.baseRevision;
        const deletes: ChangeEvent[] = [...before].filter((k) => !after.has(k)).map((k) => ({ op: 'del', key: Buffer.from(k, 'utf8'), revision: index, at }));
        await old.add({ events: [...puts.sort((a, b) => a.revision - b.revision), ...deletes], revision: index, at });
        await old.seal();
        const replaced = this.feed;
        this.feed = undefined;
        await replaced?.close();
      }
      const { manifest, tip, keys } = taken;
      this.segmenter = this.newSegmenter(tip);
      this.keys = keys;
      // The old chain's last segments upload in the background; finish() waits for them (and stops them).
      this.retired.push(old);
      void old.drain().catch((err: unknown) => this.options.logger.warn(`${this.name}: the previous chain's last segments were not all uploaded: ${oneLine(err)}`));
      return manifest;
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async loop(): Promise<void> {
    let gap: { from: number; cause: string; previousBase: string } | undefined;
    let delay = this.options.retryMs ?? 1000;
    while (!this.stopping) {
      let tip: ChainTip | undefined;
      try {
        if (gap) {
          // What the old chain's spool still holds goes up first: the gap is only what no segment has.
          const old = await resumeChain(this.store, this.name, this.settingsDir(), this.options.logger).catch(() => undefined);
          if (old && old.base === gap.previousBase) gap.from = old.last + 1;
          const taken = await this.takeBase();
          tip = taken.tip;
          this.keys = taken.keys;
          this.counters.gaps++;
          await this.options.record('continuity-gap', {
            job: this.name,
            fromRevision: gap.from,
            toRevision: taken.tip.baseRevision,
            previousBase: gap.previousBase,
            newBase: taken.tip.base,
            cause: gap.cause,
          });
          this.options.logger.warn(`${this.name}: continuity gap: revisions ${gap.from}..${taken.tip.baseRevision} are in no chain (${gap.cause}); new base ${taken.tip.base}`);
          gap = undefined;
        } else {
          const resumed = await resumeChain(this.store, this.name, this.settingsDir(), this.options.logger);
          if (resumed) {
            tip = resumed;
            this.keys = this.source.type === 'consul' ? await chainKeys(this.store, this.name, resumed) : undefined;
          } else {
            const taken = await this.takeBase();
            tip = taken.tip;
            this.keys = taken.keys;
          }
        }
        this.segmenter = this.newSegmenter(tip);
        await this.follow();
        delay = this.options.retryMs ?? 1000;
      } catch (err) {
        if (this.stopping) break;
        this.lastError = oneLine(err);
        const reached = this.segmenter?.currentTip();
        if (err instanceof CompactedError || err instanceof SpoolFullError) {
          if (err instanceof SpoolFullError) await this.waitForRepository();
          const from = (reached?.last ?? 0) + 1;
          gap = { from, cause: err instanceof CompactedError ? `the source no longer has revision ${err.wanted} (compacted)` : `the repository was unreachable for longer than the spool holds (${err.bytes} bytes)`, previousBase: reached?.base ?? '' };
          continue;
        }
        this.options.logger.warn(`${this.name}: ${err instanceof ChainConflictError ? '' : 'following failed, resuming from the repository: '}${this.lastError}`);
        await this.sleep(delay);
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  /** Follows the source into the current segmenter until stopped; reopens the feed when a rebase closed it. */
  private async follow(): Promise<void> {
    const timer = setInterval(() => {
      void this.serial(() => (this.segmenter as Segmenter).flush()).catch((err: unknown) => this.failFollow(err));
    }, this.settings.segmentSeconds * 1000);
    try {
      while (!this.stopping) {
        const tip = (this.segmenter as Segmenter).currentTip();
        this.fault = undefined;
        const feed = this.openFeed(tip.last + 1);
        this.feed = feed;
        for await (const batch of feed.batches) {
          // A batch from a feed a rebase has replaced belongs to no chain any more.
          await this.serial(() => (feed === this.feed ? this.add(batch) : Promise.resolve())).catch((err: unknown) => this.failFollow(err));
          if (this.currentFault()) break;
        }
        await feed.close();
        const fault = this.currentFault();
        if (fault) throw fault;
      }
    } finally {
      clearInterval(timer);
      await this.feed?.close();
      await this.finish();
    }
  }

  /** Consul: the key set follows what the chain holds (a rebase diffs the new base against it). */
  private async add(batch: ChangeBatch): Promise<void> {
    const segmenter = this.segmenter as Segmenter;
    if (this.keys && batch.revision > segmenter.state().receivedRevision) {
      for (const event of batch.events) {
        if (event.op === 'put') this.keys.add(event.key.toString('utf8'));
        else this.keys.delete(event.key.toString('utf8'));
      }
    }
    await segmenter.add(batch);
  }

  /** Read through a method: the flow analysis would keep the `undefined` set before the awaits. */
  private currentFault(): Error | undefined {
    return this.fault;
  }

  private failFollow(err: unknown): void {
    this.fault ??= err instanceof Error ? err : new KvdrError(oneLine(err));
    void this.feed?.close();
  }

  /** On the way out: cut what is pending and give the uploads a moment; the spool keeps the rest. */
  private async finish(): Promise<void> {
    const retired = this.retired;
    this.retired = [];
    await Promise.allSettled(retired.map(async (old) => {
      await Promise.race([old.drain(), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
      old.stop();
    }));
    const segmenter = this.segmenter;
    if (!segmenter) return;
    try {
      await this.serial(() => segmenter.flush());
      await Promise.race([segmenter.drain(), new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    } catch (err) {
      if (!(err instanceof ChainConflictError)) this.options.logger.warn(`${this.name}: ${oneLine(err)}`);
    } finally {
      segmenter.stop();
    }
  }

  private openFeed(from: number): ChangeFeed {
    const scope = sourceScope(this.source);
    if (this.source.type === 'etcd') {
      const etcd = connectEtcd(this.source, process.env, -1);
      const feed = watchChanges(etcd, { prefix: Buffer.from(scope), from, label: `etcd ${this.source.endpoints.join(',')}` });
      return { ...feed, close: async () => (await feed.close(), etcd.close()) };
    }
    return pollChanges(consulAccess(this.source), { scope, keys: new Set(this.keys), from });
  }

  private newSegmenter(tip: ChainTip): Segmenter {
    return new Segmenter({
      store: this.store,
      tip,
      compression: this.options.job.compression,
      spoolDir: this.settingsDir(),
      segmentBytes: this.settings.segmentBytes,
      spoolMaxBytes: this.settings.spoolMaxBytes,
      logger: this.options.logger.child({ job: this.name }),
      ...(this.options.now ? { now: this.options.now } : {}),
      onDurable: (segment) => {
        this.counters.segments++;
        this.counters.segmentBytes += segment.bytes;
        this.lastError = undefined;
      },
    });
  }

  private settingsDir(): string {
    return this.settings.spoolDir ?? join(tmpdir(), 'kvdr-spool', this.name);
  }

  /** A base export of the scope (etcd: at `revision` when given), stored and recorded like any backup. */
  private async takeBase(options: BaseOptions = {}): Promise<TakenBase> {
    const taken = await takeChainBase({ store: this.store, repository: this.repository, source: this.source, job: this.options.job, logger: this.options.logger }, options);
    const { manifest } = taken;
    await this.options.record('backup', { backup: manifest.id, job: manifest.job, kind: manifest.kind, repository: manifest.repository.name, key: manifest.repository.key, sha256: manifest.sha256, bytes: manifest.bytes.stored, role: 'base', startedAt: manifest.startedAt, finishedAt: manifest.finishedAt });
    return taken;
  }

  /** After a spool overflow: waits until the repository answers again, so the new base can be stored. */
  private async waitForRepository(): Promise<void> {
    let delay = this.options.retryMs ?? 1000;
    while (!this.stopping) {
      try {
        await this.store.head('kvdr-probe');
        return;
      } catch {
        await this.sleep(delay);
        delay = Math.min(delay * 2, 30_000);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

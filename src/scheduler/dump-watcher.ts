import { watch, type FSWatcher } from 'node:fs';
import { oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

export interface DumpWatcherOptions {
  /** The PX dump directories (pxDumps.dirs). */
  dirs: readonly string[];
  /** A dump is read once it has not changed for this long (pxDumps.stableSeconds). */
  stableMs: number;
  /** Starts a collection; false when it could not start now (a run is going) and should be tried again. */
  collect: () => boolean;
  logger: Logger;
}

const DUMP_NAME = /^pwx_kvdb_.*\.dump$/;

/**
 * Starts a px-dumps collection as soon as a dump has settled, instead of waiting for the job's next cron
 * slot: a node writes its dump when it has lost the KVDB, and that is when a copy in another region
 * matters most. The cron schedule stays the safety net (fs.watch can miss events on some filesystems).
 */
export class DumpWatcher {
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: DumpWatcherOptions) {}

  start(): void {
    for (const dir of this.options.dirs) {
      try {
        const watcher = watch(dir, (_event, name) => {
          if (name !== null && DUMP_NAME.test(name)) this.settle();
        });
        watcher.on('error', (err) => this.options.logger.warn({ dir }, `stopped watching ${dir} (${oneLine(err)}); dumps there are collected on the job's schedule`));
        this.watchers.push(watcher);
      } catch (err) {
        this.options.logger.warn({ dir }, `cannot watch ${dir} (${oneLine(err)}); dumps there are collected on the job's schedule`);
      }
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const watcher of this.watchers) watcher.close();
  }

  /** Every change restarts the wait: a dump still being written keeps pushing the collection back. */
  private settle(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      if (!this.closed && !this.options.collect()) this.settle();
    }, this.options.stableMs + 500);
  }
}

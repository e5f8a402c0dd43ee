import cliProgress from 'cli-progress';
import type { Logger } from './logger.js';

export interface Progress {
  update(done: number): void;
  stop(): void;
}

/** A bar on a terminal, a log line every few seconds otherwise. */
export function progress(label: string, total: number, logger: Logger, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY && total > 0) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% {value}/{total} keys, eta {eta_formatted}`, stream, hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0);
    return { update: (done) => bar.update(done), stop: () => bar.stop() };
  }
  let last = Date.now();
  return {
    update: (done) => {
      if (Date.now() - last >= 5_000) {
        last = Date.now();
        logger.info({ done, total }, `${label}: ${done} of ${total} keys`);
      }
    },
    stop: () => undefined,
  };
}

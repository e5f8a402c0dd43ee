export interface RetryOptions {
  /** Retries after the first attempt. @defaultValue 3 */
  retries?: number;
  /** @defaultValue 2000 */
  baseDelayMs?: number;
  /** @defaultValue 60000 */
  maxDelayMs?: number;
  /** Stops retrying: an aborted run is not retried. */
  signal?: AbortSignal;
  /** Whether a failure may pass on a second try. @defaultValue every failure */
  retryable?: (err: unknown) => boolean;
  /** For tests: the clock and the dice. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  onRetry?: (attempt: number, delayMs: number, err: unknown) => void;
}

/**
 * Exponential backoff with full jitter: attempt n waits a random time in [0, min(max, base·2ⁿ)], so
 * replicas that failed together do not retry together.
 */
export function backoffDelay(attempt: number, base: number, max: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(max, base * 2 ** attempt));
}

export async function withRetries<T>(action: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const retries = options.retries ?? 3;
  const sleep = options.sleep ?? abortableSleep;
  for (let attempt = 0; ; attempt++) {
    try {
      return await action(attempt);
    } catch (err) {
      if (attempt >= retries || options.signal?.aborted || options.retryable?.(err) === false) throw err;
      const delay = backoffDelay(attempt, options.baseDelayMs ?? 2_000, options.maxDelayMs ?? 60_000, options.random);
      options.onRetry?.(attempt + 1, delay, err);
      await sleep(delay, options.signal);
      if (options.signal?.aborted) throw err;
    }
  }
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/**
 * Retries inside one invocation: exponential back-off with full jitter, `Retry-After` honoured,
 * bounded by a number of attempts AND by the caller's absolute deadline. Past the deadline the
 * last error goes back up (retryable), so the message returns to its queue instead of the Lambda
 * being killed mid-sleep.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { SyncError } from '../errors.ts';
import { DeadlineExceededError } from './api-errors.ts';

interface RetryPolicy {
  /** Attempts in all, the first included (1 = no retry). */
  maxAttempts: number;
  /** Upper bound of the first back-off; doubles per attempt. */
  baseDelayMs: number;
  /** Cap of any back-off computed here. */
  maxDelayMs: number;
  /** A `Retry-After` longer than this is not waited for: the error goes up at once. */
  maxRetryAfterMs: number;
}

const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  maxRetryAfterMs: 10_000,
};

/** One retry about to happen, for metrics and logs (no secrets in it). */
interface RetryEvent {
  /** The attempt that just failed (1-based). */
  attempt: number;
  delayMs: number;
  code: string;
  target: string | undefined;
  error: unknown;
}

interface RetryClock {
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** In [0, 1); `Math.random` by default. */
  random: () => number;
}

const systemClock: RetryClock = {
  now: () => Date.now(),
  sleep: (ms, signal) => delay(ms, undefined, signal === undefined ? undefined : { signal }),
  random: Math.random,
};

interface RetryOptions {
  policy?: Partial<RetryPolicy>;
  clock?: Partial<RetryClock>;
  /** Absolute epoch ms: no attempt starts and no sleep ends after it. */
  deadline?: number | undefined;
  signal?: AbortSignal | undefined;
  onRetry?: ((event: RetryEvent) => void) | undefined;
  /** Which errors to try again; by default retryable SyncErrors only (bugs are not retried). */
  shouldRetry?: (error: unknown) => boolean;
  /** For messages of DeadlineExceededError. */
  target?: string | undefined;
}

interface AttemptContext {
  attempt: number;
  /** Milliseconds left before the deadline; `undefined` without one. */
  remainingMs: number | undefined;
}

// A function, not an inline check: TypeScript would narrow `aborted` to false after the first test.
const isAborted = (signal: AbortSignal | undefined): boolean => signal?.aborted === true;

const defaultShouldRetry = (error: unknown): boolean => error instanceof SyncError && error.retryable;

/**
 * Full-jitter back-off: uniform in [0, min(cap, base·2^(attempt-1))).
 *
 * @example backoffDelay(3, { baseDelayMs: 100, maxDelayMs: 5000 }, () => 0.5) // 200
 */
const backoffDelay = (
  attempt: number,
  policy: Pick<RetryPolicy, 'baseDelayMs' | 'maxDelayMs'>,
  random: () => number,
): number => Math.floor(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1)));

const retryAfterOf = (error: unknown): number | undefined => {
  const value = (error as { retryAfterMs?: unknown } | null)?.retryAfterMs;
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
};

const codeOf = (error: unknown): string =>
  error instanceof SyncError ? error.code : error instanceof Error ? error.name : 'UNKNOWN';

const targetOf = (error: unknown, fallback: string | undefined): string | undefined =>
  error instanceof SyncError && error.target !== undefined ? error.target : fallback;

/** Records on the error how many attempts were made (the DLQ reports it). */
const markAttempts = (error: unknown, attempts: number): void => {
  if (typeof error === 'object' && error !== null && Object.isExtensible(error))
    (error as { attempts?: number }).attempts = attempts;
};

/**
 * Runs `fn` until it succeeds, a non-retryable error occurs, the attempts are used up, or the
 * next attempt could not start before the deadline. The error that ends it carries `attempts`.
 *
 * @example
 * const access = await withRetry(() => send(request), {
 *   policy: { maxAttempts: 4 },
 *   deadline: Date.now() + context.getRemainingTimeInMillis() - 2_000,
 *   onRetry: (event) => metrics.addMetric('SwrRetry', 'Count', 1),
 * });
 */
const withRetry = async <T>(
  fn: (context: AttemptContext) => Promise<T>,
  options: RetryOptions = {},
): Promise<T> => {
  const policy = { ...defaultRetryPolicy, ...options.policy };
  const clock = { ...systemClock, ...options.clock };
  const shouldRetry = options.shouldRetry ?? defaultShouldRetry;
  const { deadline, signal } = options;
  const maxAttempts = Math.max(1, Math.floor(policy.maxAttempts));
  let lastError: unknown;

  const stop = (attempts: number, why: string): unknown => {
    if (lastError !== undefined) return lastError;
    return new DeadlineExceededError(`${why} before the first attempt`, { target: options.target, attempts });
  };

  for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
    if (isAborted(signal)) throw stop(attempt - 1, 'aborted');
    const now = clock.now();
    if (deadline !== undefined && now >= deadline) throw stop(attempt - 1, 'deadline passed');
    try {
      return await fn({ attempt, remainingMs: deadline === undefined ? undefined : deadline - now });
    } catch (error) {
      lastError = error;
      markAttempts(error, attempt);
      // Past (or about to pass) the deadline nothing gets better by trying again.
      if (
        attempt >= maxAttempts ||
        !shouldRetry(error) ||
        isAborted(signal) ||
        error instanceof DeadlineExceededError
      )
        throw error;
      const asked = retryAfterOf(error);
      if (asked !== undefined && asked > policy.maxRetryAfterMs) throw error;
      const wait = asked ?? backoffDelay(attempt, policy, clock.random);
      if (deadline !== undefined && clock.now() + wait >= deadline) throw error;
      options.onRetry?.({
        attempt,
        delayMs: wait,
        code: codeOf(error),
        target: targetOf(error, options.target),
        error,
      });
      try {
        await clock.sleep(wait, signal);
      } catch {
        // Aborted while waiting: the last real failure says more than the AbortError.
        throw error;
      }
    }
  }
  // Unreachable: the loop either returns or throws on its last attempt.
  throw stop(maxAttempts, 'no attempt left');
};

export type { AttemptContext, RetryClock, RetryEvent, RetryOptions, RetryPolicy };
export { backoffDelay, defaultRetryPolicy, markAttempts, systemClock, withRetry };

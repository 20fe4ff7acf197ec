/**
 * A token bucket in front of every SWR request of this instance, retries included: Huawei's API
 * gateway throttles per API and per account (429 APIGW.0308), and many concurrent targets with
 * retries on top would otherwise run straight into it. A wait never passes the caller's deadline.
 */
import { DeadlineExceededError } from './api-errors.ts';

interface RateLimit {
  /** Requests per second, sustained. */
  ratePerSecond: number;
  /** Requests that may go at once after a quiet spell. */
  burst: number;
}

/** Well below Huawei's default gateway limit of 200 requests per second per API. */
/**
 * 20 requests/s per function instance: with the deployed concurrency (2 sync, 5 offboard, 1
 * reconcile) at most 160/s for the account, under Huawei's default gateway quota of 200/s.
 */
const defaultRateLimit: RateLimit = { ratePerSecond: 20, burst: 10 };

/** One wait for a token, for metrics: how long, and for which target. */
interface RateLimitWait {
  waitMs: number;
  target: string | undefined;
}

interface RateLimiterClock {
  now: () => number;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
}

interface AcquireOptions {
  /** Absolute epoch ms: a wait that would end after it is not started. */
  deadline?: number | undefined;
  signal?: AbortSignal | undefined;
  target?: string | undefined;
}

interface RateLimiter {
  /** Resolves when the request may go; throws DeadlineExceededError when that is after the deadline. */
  acquire(options?: AcquireOptions): Promise<void>;
}

/**
 * @example
 * const limiter = createRateLimiter({ ratePerSecond: 50, burst: 20 }, clock, (wait) => metrics.count('SwrRateLimitWait'));
 * await limiter.acquire({ deadline, target: 'core/api' });
 */
const createRateLimiter = (
  limit: RateLimit,
  clock: RateLimiterClock,
  onWait?: (wait: RateLimitWait) => void,
): RateLimiter => {
  const rate = limit.ratePerSecond;
  const burst = Math.max(1, limit.burst);
  let tokens = burst;
  let updatedAt = clock.now();

  const refill = (now: number): void => {
    tokens = Math.min(burst, tokens + (Math.max(0, now - updatedAt) / 1000) * rate);
    updatedAt = now;
  };

  return {
    async acquire(options = {}) {
      const now = clock.now();
      refill(now);
      // A token is reserved at once (the bucket may go negative): callers are served in order.
      const waitMs = tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / rate) * 1000);
      if (waitMs === 0) {
        tokens -= 1;
        return;
      }
      if (options.deadline !== undefined && now + waitMs >= options.deadline)
        throw new DeadlineExceededError(
          `SWR request rate limit (${rate}/s): the next slot is ${waitMs} ms away, past the deadline`,
          { target: options.target },
        );
      tokens -= 1;
      onWait?.({ waitMs, target: options.target });
      try {
        await clock.sleep(waitMs, options.signal);
      } catch (error) {
        // Aborted: the reserved slot goes back.
        tokens += 1;
        throw new DeadlineExceededError('SWR request aborted while waiting for the rate limit', {
          target: options.target,
          cause: error,
        });
      }
    },
  };
};

export type { AcquireOptions, RateLimit, RateLimiter, RateLimiterClock, RateLimitWait };
export { createRateLimiter, defaultRateLimit };

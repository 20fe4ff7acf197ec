/**
 * The pace of this instance's SWR requests, retries included. Huawei's API gateway throttles per
 * account (429 APIGW.0308), and how much of that quota an instance may use depends on how many
 * other instances are busy at the same moment, which no instance knows. So the rate adapts, as
 * TCP's congestion window or the AWS SDK's adaptive retry mode do (AIMD): it starts at the
 * configured ceiling; a throttling answer cuts it multiplicatively (never below a floor); answers
 * that pass the gateway raise it again, linearly in time, up to the ceiling. Busy instances thus
 * share the quota between them, and an idle instance costs nothing. A wait never passes the
 * caller's deadline.
 *
 * The decisions (`rateAfterAccepted`, `rateAfterThrottled`, `burstAt`) are pure, over plain data
 * and a time given in; `createRateLimiter` is the token bucket that applies them.
 */
import { DeadlineExceededError } from './api-errors.ts';

interface RateLimit {
  /** Requests per second, sustained: the ceiling the adaptive rate never exceeds. */
  ratePerSecond: number;
  /** Requests that may go at once after a quiet spell, at the ceiling (scaled down with the rate). */
  burst: number;
  /** Whether throttling answers cut the rate (AIMD); `false` keeps it fixed at `ratePerSecond`. */
  adaptive?: boolean | undefined;
}

/**
 * 20 requests/s per function instance, adaptive: under a small account quota the busy instances
 * share it by backing off on 429s; under Huawei's default (200/s per API) the 8 instances that may
 * run at once (2 sync, 5 offboard, 1 reconcile) never reach it.
 */
const defaultRateLimit: Required<RateLimit> = { ratePerSecond: 20, burst: 10, adaptive: true };

/** How the rate moves between its floor and its ceiling. */
interface AdaptivePolicy {
  /** The configured rate: never exceeded. */
  ceiling: number;
  /** Never cut below this (requests per second). */
  floor: number;
  /** Factor of a cut, in (0, 1). */
  decrease: number;
  /** Requests per second gained per second of answers that pass the gateway. */
  increasePerSecond: number;
}

/**
 * A cut keeps 70 % of the rate (CUBIC's and the AWS SDK's factor: two busy instances swing between
 * 14 and 20 requests/s together instead of 10 and 20 with a halving); it climbs back from the floor
 * to the ceiling in 20 s (from a cut at the ceiling in 6 s).
 */
const adaptivePolicyFor = (limit: Pick<RateLimit, 'ratePerSecond'>): AdaptivePolicy => {
  const ceiling = Math.max(limit.ratePerSecond, Number.MIN_VALUE);
  return {
    ceiling,
    floor: Math.min(1, ceiling),
    decrease: 0.7,
    increasePerSecond: ceiling / 20,
  };
};

interface AdaptiveRate {
  /** Requests per second now. */
  rate: number;
  /** When `rate` was last set (epoch ms): growth is counted from there. */
  since: number;
  /**
   * Counts the cuts. A request carries the epoch it was paced in: a throttling answer to a
   * request paced before the last cut says nothing about the rate since, so it does not cut again
   * (the 429s of one burst in flight cost one cut, as TCP cuts once per window).
   */
  epoch: number;
}

const initialRate = (policy: AdaptivePolicy, now: number): AdaptiveRate => ({
  rate: policy.ceiling,
  since: now,
  epoch: 0,
});

const clampRate = (policy: AdaptivePolicy, rate: number): number =>
  Math.min(policy.ceiling, Math.max(policy.floor, rate));

/**
 * An answer that passed the gateway: the rate grows by `increasePerSecond` for every second since
 * it was last set, up to the ceiling. A clock that went back grows nothing.
 *
 * @example rateAfterAccepted({ rate: 10, since: 0, epoch: 1 }, policyOf20, 2_000).rate // 12
 */
const rateAfterAccepted = (state: AdaptiveRate, policy: AdaptivePolicy, now: number): AdaptiveRate => {
  const elapsedMs = Math.max(0, now - state.since);
  if (state.rate >= policy.ceiling) return { ...state, rate: policy.ceiling, since: now };
  return {
    ...state,
    rate: clampRate(policy, state.rate + (policy.increasePerSecond * elapsedMs) / 1000),
    since: now,
  };
};

/**
 * A throttling answer to a request paced in `pacedInEpoch`: the rate is cut by `decrease`, down to
 * the floor at the lowest, unless a cut already came after that request was paced.
 *
 * @example rateAfterThrottled({ rate: 20, since: 0, epoch: 0 }, policyOf20, 500, 0) // { rate: 14, since: 500, epoch: 1 }
 */
const rateAfterThrottled = (
  state: AdaptiveRate,
  policy: AdaptivePolicy,
  now: number,
  pacedInEpoch: number,
): AdaptiveRate => {
  if (pacedInEpoch !== state.epoch) return state;
  return { rate: clampRate(policy, state.rate * policy.decrease), since: now, epoch: state.epoch + 1 };
};

/**
 * The bucket's size at `rate`: the configured burst at the ceiling, scaled down with the rate (a
 * cut instance that saved up a full burst would send it straight into the throttling again),
 * at least one request.
 *
 * @example burstAt({ ratePerSecond: 20, burst: 10 }, 5) // 2.5
 */
const burstAt = (limit: Pick<RateLimit, 'ratePerSecond' | 'burst'>, rate: number): number =>
  Math.max(1, (Math.max(1, limit.burst) * Math.min(rate, limit.ratePerSecond)) / limit.ratePerSecond);

/** One wait for a token, for metrics: how long, for which target, at what rate. */
interface RateLimitWait {
  waitMs: number;
  target: string | undefined;
  /** The instance's rate when the wait began. */
  ratePerSecond: number;
}

/** A throttling answer cut the rate, for metrics and logs. */
interface RateCut {
  fromPerSecond: number;
  toPerSecond: number;
  target: string | undefined;
}

interface RateLimitHooks {
  onWait?: ((wait: RateLimitWait) => void) | undefined;
  onCut?: ((cut: RateCut) => void) | undefined;
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

/** The slot a request went in: hand it back with the gateway's answer. */
interface RateLimitSlot {
  epoch: number;
  target: string | undefined;
}

/** What the gateway made of a request: let through (any answer but throttling) or throttled. */
type GatewayVerdict = 'accepted' | 'throttled';

interface RateLimiter {
  /** Resolves when the request may go; throws DeadlineExceededError when that is after the deadline. */
  acquire(options?: AcquireOptions): Promise<RateLimitSlot>;
  /** The answer to the request sent in `slot` (no call when no answer came). */
  record(slot: RateLimitSlot, verdict: GatewayVerdict): void;
  /** Requests per second now. */
  currentRate(): number;
}

/**
 * @example
 * const limiter = createRateLimiter({ ratePerSecond: 20, burst: 10 }, clock, { onWait: () => metrics.count('RateLimitWaits') });
 * const slot = await limiter.acquire({ deadline, target: 'core/api' });
 * limiter.record(slot, response.status === 429 ? 'throttled' : 'accepted');
 */
const createRateLimiter = (
  limit: RateLimit,
  clock: RateLimiterClock,
  hooks: RateLimitHooks = {},
): RateLimiter => {
  const adaptive = limit.adaptive ?? defaultRateLimit.adaptive;
  const policy = adaptivePolicyFor(limit);
  let state = initialRate(policy, clock.now());
  let tokens = burstAt(limit, state.rate);
  let updatedAt = clock.now();

  // The rate changes only at answers; between two of them the bucket fills at the current rate.
  const refill = (now: number): void => {
    tokens = Math.min(
      burstAt(limit, state.rate),
      tokens + (Math.max(0, now - updatedAt) / 1000) * state.rate,
    );
    updatedAt = now;
  };

  const record = (slot: RateLimitSlot, verdict: GatewayVerdict): void => {
    if (!adaptive) return;
    const now = clock.now();
    refill(now);
    const before = state;
    state =
      verdict === 'throttled'
        ? rateAfterThrottled(state, policy, now, slot.epoch)
        : rateAfterAccepted(state, policy, now);
    tokens = Math.min(tokens, burstAt(limit, state.rate));
    if (state.epoch !== before.epoch) {
      // The gateway has just said it has no room: what was saved up would only meet 429s too.
      tokens = Math.min(tokens, 0);
      hooks.onCut?.({ fromPerSecond: before.rate, toPerSecond: state.rate, target: slot.target });
    }
  };

  return {
    async acquire(options = {}) {
      for (;;) {
        const now = clock.now();
        refill(now);
        const rate = state.rate;
        const slot = { epoch: state.epoch, target: options.target };
        // A token is reserved at once (the bucket may go negative): callers are served in order.
        const waitMs = tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / rate) * 1000);
        if (waitMs === 0) {
          tokens -= 1;
          return slot;
        }
        if (options.deadline !== undefined && now + waitMs >= options.deadline)
          throw new DeadlineExceededError(
            `SWR request rate limit (${formatRate(rate)}/s): the next slot is ${waitMs} ms away, past the deadline`,
            { target: options.target },
          );
        tokens -= 1;
        hooks.onWait?.({ waitMs, target: options.target, ratePerSecond: rate });
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
        if (state.epoch === slot.epoch) return slot;
        // The rate was cut while this request waited: its slot was paced at the old rate, and the
        // gateway has just said it has no room. The slot goes back and the request waits anew.
        tokens += 1;
      }
    },
    record,
    currentRate: () => state.rate,
  };
};

const formatRate = (rate: number): string => (Number.isInteger(rate) ? String(rate) : rate.toFixed(1));

export type {
  AcquireOptions,
  AdaptivePolicy,
  AdaptiveRate,
  GatewayVerdict,
  RateCut,
  RateLimit,
  RateLimiter,
  RateLimiterClock,
  RateLimitHooks,
  RateLimitSlot,
  RateLimitWait,
};
export {
  adaptivePolicyFor,
  burstAt,
  createRateLimiter,
  defaultRateLimit,
  initialRate,
  rateAfterAccepted,
  rateAfterThrottled,
};

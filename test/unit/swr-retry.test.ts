import { describe, expect, it, vi } from 'vitest';
import { ErrorCodes, SyncError } from '../../lib/errors.ts';
import { DeadlineExceededError, SwrApiError } from '../../lib/swr/api-errors.ts';
import { backoffDelay, type RetryEvent, withRetry } from '../../lib/swr/retry.ts';
import { caught } from '../support/caught.ts';

/** A clock that only moves when the code under test sleeps. */
const fakeClockFactory = (start = 1_000_000) => {
  const state = { now: start, sleeps: [] as number[] };
  return {
    state,
    clock: {
      now: () => state.now,
      sleep: async (ms: number) => {
        state.sleeps.push(ms);
        state.now += ms;
      },
      random: () => 0.5,
    },
  };
};

const apiErrorFactory = (overrides: { status?: number; retryable?: boolean; retryAfterMs?: number } = {}) =>
  new SwrApiError({
    service: 'SWR',
    status: overrides.status ?? 503,
    code: undefined,
    serverMessage: undefined,
    method: 'GET',
    target: 'core/api',
    retryable: overrides.retryable ?? true,
    retryAfterMs: overrides.retryAfterMs,
  });

/** Fails with the given errors in turn, then answers 'ok'. */
const flakyFactory = (errors: unknown[]) => {
  const calls: number[] = [];
  const fn = async ({ attempt }: { attempt: number }) => {
    calls.push(attempt);
    const error = errors[attempt - 1];
    if (error !== undefined) throw error;
    return 'ok';
  };
  return { fn, calls };
};

describe('backoffDelay', () => {
  it.each([
    [1, 0.5, 50],
    [2, 0.5, 100],
    [3, 0.999, 399],
    [10, 0.5, 500],
    [4, 0, 0],
  ])('attempt %d with random %d waits %d ms (base 100, cap 1000)', (attempt, random, expected) => {
    // Act & Assess
    expect(backoffDelay(attempt, { baseDelayMs: 100, maxDelayMs: 1000 }, () => random)).toBe(expected);
  });
});

describe('withRetry', () => {
  it('retries retryable errors with jittered back-off and reports each retry', async () => {
    // Prepare
    const { clock, state } = fakeClockFactory();
    const { fn, calls } = flakyFactory([apiErrorFactory(), apiErrorFactory()]);
    const events: RetryEvent[] = [];

    // Act
    const result = await withRetry(fn, {
      policy: { maxAttempts: 4, baseDelayMs: 100, maxDelayMs: 1000 },
      clock,
      onRetry: (event) => events.push(event),
    });

    // Assess
    expect(result).toBe('ok');
    expect(calls).toEqual([1, 2, 3]);
    expect(state.sleeps).toEqual([50, 100]);
    expect(events.map((e) => [e.attempt, e.delayMs, e.code, e.target])).toEqual([
      [1, 50, 'HTTP_503', 'core/api'],
      [2, 100, 'HTTP_503', 'core/api'],
    ]);
  });

  it('stops at maxAttempts and records the attempts on the error', async () => {
    // Prepare
    const { clock } = fakeClockFactory();
    const last = apiErrorFactory();
    const { fn, calls } = flakyFactory([apiErrorFactory(), apiErrorFactory(), last]);

    // Act
    const error = await caught(withRetry(fn, { policy: { maxAttempts: 3 }, clock }));

    // Assess
    expect(error).toBe(last);
    expect(last.attempts).toBe(3);
    expect(calls).toEqual([1, 2, 3]);
  });

  it.each([
    ['a permanent SWR error', apiErrorFactory({ status: 404, retryable: false })],
    ['a programming error', new TypeError('bug')],
  ])('does not retry %s', async (_what, failure) => {
    // Prepare
    const { clock, state } = fakeClockFactory();
    const { fn, calls } = flakyFactory([failure]);

    // Act
    const error = await caught(withRetry(fn, { policy: { maxAttempts: 5 }, clock }));

    // Assess
    expect(error).toBe(failure);
    expect(calls).toEqual([1]);
    expect(state.sleeps).toEqual([]);
    expect(error).toMatchObject({ attempts: 1 });
  });

  it('honours Retry-After instead of the computed back-off', async () => {
    // Prepare
    const { clock, state } = fakeClockFactory();
    const { fn } = flakyFactory([apiErrorFactory({ status: 429, retryAfterMs: 3000 })]);

    // Act
    const result = await withRetry(fn, {
      policy: { maxAttempts: 3, baseDelayMs: 100, maxRetryAfterMs: 10_000 },
      clock,
    });

    // Assess
    expect(result).toBe('ok');
    expect(state.sleeps).toEqual([3000]);
  });

  it('gives up at once when Retry-After exceeds what it may wait', async () => {
    // Prepare
    const { clock, state } = fakeClockFactory();
    const throttled = apiErrorFactory({ status: 429, retryAfterMs: 120_000 });
    const { fn, calls } = flakyFactory([throttled]);

    // Act
    const error = await caught(withRetry(fn, { policy: { maxAttempts: 3, maxRetryAfterMs: 10_000 }, clock }));

    // Assess
    expect(error).toBe(throttled);
    expect(calls).toEqual([1]);
    expect(state.sleeps).toEqual([]);
  });

  it('never sleeps past the deadline: the last error goes up, retryable', async () => {
    // Prepare
    const { clock, state } = fakeClockFactory(10_000);
    const throttled = apiErrorFactory({ status: 429, retryAfterMs: 2_000 });
    const { fn, calls } = flakyFactory([apiErrorFactory(), throttled]);

    // Act
    const error = await caught(
      withRetry(fn, {
        policy: { maxAttempts: 5, baseDelayMs: 100 },
        clock,
        deadline: 11_000,
      }),
    );

    // Assess
    expect(error).toBe(throttled);
    expect(throttled).toMatchObject({ retryable: true, attempts: 2 });
    expect(calls).toEqual([1, 2]);
    expect(state.sleeps).toEqual([50]);
    expect(state.now).toBeLessThan(11_000);
  });

  it('passes the time left to each attempt', async () => {
    // Prepare
    const { clock } = fakeClockFactory(10_000);
    const seen: Array<number | undefined> = [];

    // Act
    await withRetry(
      async ({ remainingMs }) => {
        seen.push(remainingMs);
      },
      { clock, deadline: 12_500 },
    );

    // Assess
    expect(seen).toEqual([2_500]);
  });

  it('starts no attempt when the deadline has passed', async () => {
    // Prepare
    const { clock } = fakeClockFactory(20_000);
    const fn = vi.fn(async () => 'ok');

    // Act
    const error = await caught(withRetry(fn, { clock, deadline: 19_999, target: 'core' }));

    // Assess
    expect(fn).not.toHaveBeenCalled();
    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect(error).toMatchObject({ code: ErrorCodes.deadline, retryable: true, attempts: 0, target: 'core' });
    expect(error).toBeInstanceOf(SyncError);
  });

  it('stops when the caller aborts during the back-off', async () => {
    // Prepare
    const controller = new AbortController();
    const failure = apiErrorFactory();
    const { fn, calls } = flakyFactory([failure, failure, failure]);
    const clock = {
      now: () => 0,
      random: () => 0.5,
      sleep: async () => {
        controller.abort();
        throw new DOMException('aborted', 'AbortError');
      },
    };

    // Act
    const error = await caught(
      withRetry(fn, { clock, signal: controller.signal, policy: { maxAttempts: 3 } }),
    );

    // Assess
    expect(error).toBe(failure);
    expect(calls).toEqual([1]);
  });
});

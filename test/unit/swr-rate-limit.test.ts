/**
 * The adaptive SWR rate limit: the AIMD decisions over plain data and a time given in, the token
 * bucket that applies them on a fake clock (properties: the rate stays between floor and ceiling,
 * a run of throttling answers drops it, answers that pass bring it back to the ceiling, no wait
 * passes the caller's deadline, the instance never sends faster than its ceiling allows), and the
 * client feeding it from the answers it classifies (MockAgent).
 */
import fc from 'fast-check';
import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Target } from '../../lib/domain.ts';
import { DeadlineExceededError, isThrottlingResponse } from '../../lib/swr/api-errors.ts';
import { createStaticTokenAuth } from '../../lib/swr/auth.ts';
import { createSwrClient } from '../../lib/swr/client.ts';
import {
  type AdaptivePolicy,
  type AdaptiveRate,
  adaptivePolicyFor,
  burstAt,
  createRateLimiter,
  type GatewayVerdict,
  initialRate,
  type RateCut,
  type RateLimit,
  rateAfterAccepted,
  rateAfterThrottled,
} from '../../lib/swr/rate-limit.ts';
import { caught } from '../support/caught.ts';

const policyOf20 = adaptivePolicyFor({ ratePerSecond: 20 });

describe('adaptive rate decisions', () => {
  it('derives floor, factor and growth from the ceiling', () => {
    // Act
    const policies = [20, 200, 1].map((ratePerSecond) => adaptivePolicyFor({ ratePerSecond }));

    // Assess
    expect(policies).toEqual([
      { ceiling: 20, floor: 1, decrease: 0.7, increasePerSecond: 1 },
      { ceiling: 200, floor: 1, decrease: 0.7, increasePerSecond: 10 },
      { ceiling: 1, floor: 1, decrease: 0.7, increasePerSecond: 0.05 },
    ]);
  });

  it.each([
    ['a cut at the ceiling', { rate: 20, since: 0, epoch: 0 }, 0, { rate: 14, since: 500, epoch: 1 }],
    ['a cut never below the floor', { rate: 1.2, since: 0, epoch: 3 }, 3, { rate: 1, since: 500, epoch: 4 }],
    [
      'a request paced before the last cut',
      { rate: 14, since: 100, epoch: 1 },
      0,
      { rate: 14, since: 100, epoch: 1 },
    ],
  ] as Array<[string, AdaptiveRate, number, AdaptiveRate]>)(
    'throttled: %s',
    (_case, state, epoch, expected) => {
      // Act
      const after = rateAfterThrottled(state, policyOf20, 500, epoch);

      // Assess
      expect(after).toEqual(expected);
    },
  );

  it.each([
    ['grows 1/s per second at ceiling 20', { rate: 10, since: 0, epoch: 1 }, 2_000, 12],
    ['stops at the ceiling', { rate: 19, since: 0, epoch: 1 }, 60_000, 20],
    ['grows nothing when the clock goes back', { rate: 10, since: 5_000, epoch: 1 }, 1_000, 10],
  ] as Array<[string, AdaptiveRate, number, number]>)('accepted: %s', (_case, state, now, rate) => {
    // Act
    const after = rateAfterAccepted(state, policyOf20, now);

    // Assess
    expect(after.rate).toBeCloseTo(rate, 9);
    expect(after.epoch).toBe(state.epoch);
    expect(after.since).toBe(now);
  });

  it.each([
    [{ ratePerSecond: 20, burst: 10 }, 20, 10],
    [{ ratePerSecond: 20, burst: 10 }, 5, 2.5],
    [{ ratePerSecond: 20, burst: 10 }, 1, 1],
    [{ ratePerSecond: 20, burst: 1 }, 14, 1],
  ])('burst of %j at %d/s is %d', (limit, rate, burst) => {
    // Act & Assess
    expect(burstAt(limit, rate)).toBe(burst);
  });
});

/** One step of a history: an answer (to a request of the current or an older epoch), or time passing. */
type Step =
  | { kind: 'answer'; verdict: GatewayVerdict; stale: boolean; afterMs: number }
  | { kind: 'idle'; ms: number };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('answer' as const),
    verdict: fc.constantFrom<GatewayVerdict>('accepted', 'throttled'),
    stale: fc.boolean(),
    afterMs: fc.integer({ min: 0, max: 2_000 }),
  }),
  fc.record({ kind: fc.constant('idle' as const), ms: fc.integer({ min: 0, max: 120_000 }) }),
);

const policyArbitrary: fc.Arbitrary<AdaptivePolicy> = fc
  .integer({ min: 1, max: 2_000 })
  .map((ratePerSecond) => adaptivePolicyFor({ ratePerSecond }));

const replay = (
  policy: AdaptivePolicy,
  steps: readonly Step[],
): { state: AdaptiveRate; now: number; rates: number[] } => {
  let now = 1_000_000;
  let state = initialRate(policy, now);
  const rates = [state.rate];
  for (const step of steps) {
    if (step.kind === 'idle') {
      now += step.ms;
      continue;
    }
    now += step.afterMs;
    state =
      step.verdict === 'accepted'
        ? rateAfterAccepted(state, policy, now)
        : rateAfterThrottled(state, policy, now, step.stale ? state.epoch - 1 : state.epoch);
    rates.push(state.rate);
  }
  return { state, now, rates };
};

describe('adaptive rate properties', () => {
  it('never exceeds the ceiling nor goes below the floor', () => {
    fc.assert(
      fc.property(policyArbitrary, fc.array(stepArbitrary, { maxLength: 200 }), (policy, steps) => {
        // Act
        const { rates } = replay(policy, steps);

        // Assess
        for (const rate of rates) {
          expect(rate).toBeLessThanOrEqual(policy.ceiling);
          expect(rate).toBeGreaterThanOrEqual(policy.floor);
        }
      }),
      { seed: 20261130, numRuns: 300 },
    );
  });

  it('drops after a run of throttling answers, to the floor at last', () => {
    fc.assert(
      fc.property(
        policyArbitrary,
        fc.array(stepArbitrary, { maxLength: 50 }),
        fc.integer({ min: 1, max: 40 }),
        (policy, history, run) => {
          // Prepare
          const { state: start, now } = replay(policy, history);

          // Act: each answer to a request paced after the cut before it.
          let state = start;
          for (let i = 0; i < run; i += 1)
            state = rateAfterThrottled(state, policy, now + i * 100, state.epoch);

          // Assess
          const expected = Math.max(policy.floor, start.rate * policy.decrease ** run);
          expect(state.rate).toBeCloseTo(expected, 6);
          if (start.rate > policy.floor) expect(state.rate).toBeLessThan(start.rate);
        },
      ),
      { seed: 20261131, numRuns: 300 },
    );
  });

  it('the throttling answers of one burst in flight cost one cut', () => {
    fc.assert(
      fc.property(policyArbitrary, fc.integer({ min: 2, max: 50 }), (policy, burst) => {
        // Prepare: every request of the burst was paced in epoch 0.
        let state = initialRate(policy, 0);

        // Act
        for (let i = 0; i < burst; i += 1) state = rateAfterThrottled(state, policy, i, 0);

        // Assess
        expect(state.epoch).toBe(1);
        expect(state.rate).toBeCloseTo(Math.max(policy.floor, policy.ceiling * policy.decrease), 9);
      }),
      { seed: 20261132, numRuns: 200 },
    );
  });

  it('returns to the ceiling when nothing is throttled', () => {
    fc.assert(
      fc.property(
        policyArbitrary,
        fc.array(stepArbitrary, { maxLength: 100 }),
        fc.integer({ min: 1, max: 1_000 }),
        (policy, history, answers) => {
          // Prepare
          const { state: start, now } = replay(policy, history);
          const recoveryMs = ((policy.ceiling - policy.floor) / policy.increasePerSecond) * 1000;

          // Act: answers that pass, spread over the time a climb from the floor takes.
          let state = start;
          let previous = start.rate;
          for (let i = 1; i <= answers; i += 1) {
            state = rateAfterAccepted(state, policy, now + Math.ceil((recoveryMs * i) / answers));
            // Assess: it only climbs.
            expect(state.rate).toBeGreaterThanOrEqual(previous);
            previous = state.rate;
          }

          // Assess
          expect(state.rate).toBeCloseTo(policy.ceiling, 6);
        },
      ),
      { seed: 20261133, numRuns: 300 },
    );
  });
});

/** A limiter on a fake clock whose sleeps move time on. */
const limiterFactory = (limit: RateLimit) => {
  const clock = { now: 1_000_000 };
  const cuts: RateCut[] = [];
  const waits: number[] = [];
  const limiter = createRateLimiter(
    limit,
    {
      now: () => clock.now,
      sleep: async (ms) => {
        clock.now += ms;
      },
    },
    { onWait: (wait) => waits.push(wait.ratePerSecond), onCut: (cut) => cuts.push(cut) },
  );
  return { limiter, clock, cuts, waits };
};

/** One step of a limiter run: a request with or without a deadline and its answer, or idle time. */
type Use =
  | { kind: 'request'; deadlineInMs: number | undefined; verdict: GatewayVerdict; answerAfterMs: number }
  | { kind: 'idle'; ms: number };

const useArbitrary: fc.Arbitrary<Use> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('request' as const),
      deadlineInMs: fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }),
      verdict: fc.constantFrom<GatewayVerdict>('accepted', 'accepted', 'throttled'),
      answerAfterMs: fc.integer({ min: 0, max: 300 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('idle' as const), ms: fc.integer({ min: 0, max: 30_000 }) }),
  },
);

describe('createRateLimiter, adaptive', () => {
  it('no wait passes the deadline; the instance never sends faster than its ceiling and burst allow', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(useArbitrary, { minLength: 1, maxLength: 150 }),
        async (ratePerSecond, burst, uses) => {
          // Prepare
          const { limiter, clock } = limiterFactory({ ratePerSecond, burst });
          const sentAt: number[] = [];

          // Act
          for (const use of uses) {
            if (use.kind === 'idle') {
              clock.now += use.ms;
              continue;
            }
            const asked = clock.now;
            const deadline = use.deadlineInMs === undefined ? undefined : asked + use.deadlineInMs;
            try {
              const slot = await limiter.acquire({ deadline });
              // Assess: a wait, if any, ended before the deadline.
              if (deadline !== undefined && clock.now > asked) expect(clock.now).toBeLessThan(deadline);
              sentAt.push(clock.now);
              clock.now += use.answerAfterMs;
              limiter.record(slot, use.verdict);
            } catch (error) {
              // Assess: refused at once, without waiting.
              expect(error).toBeInstanceOf(DeadlineExceededError);
              expect(clock.now).toBe(asked);
            }
            expect(limiter.currentRate()).toBeLessThanOrEqual(ratePerSecond);
            expect(limiter.currentRate()).toBeGreaterThanOrEqual(Math.min(1, ratePerSecond));
          }

          // Assess: in any one second, at most the ceiling's worth plus the burst (and the first request).
          for (let i = 0; i < sentAt.length; i += 1) {
            const start = sentAt[i] as number;
            const inWindow = sentAt.filter((at) => at >= start && at < start + 1000).length;
            expect(inWindow).toBeLessThanOrEqual(Math.ceil(ratePerSecond + Math.max(1, burst)) + 1);
          }
        },
      ),
      { seed: 20261134, numRuns: 200 },
    );
  });

  it('a throttling answer cuts the pace; answers that pass bring it back to the ceiling', async () => {
    // Prepare
    const { limiter, clock, cuts } = limiterFactory({ ratePerSecond: 20, burst: 10 });

    // Act: three throttled requests, each paced after the cut before it.
    for (let i = 0; i < 3; i += 1) limiter.record(await limiter.acquire({ target: 'core/api' }), 'throttled');
    const cut = limiter.currentRate();
    const before = clock.now;
    await limiter.acquire();
    const waitedMs = clock.now - before;
    for (let i = 0; i < 20; i += 1) {
      clock.now += 1000;
      limiter.record(await limiter.acquire(), 'accepted');
    }

    // Assess
    expect(cuts.map((c) => [c.fromPerSecond, c.toPerSecond, c.target])).toEqual([
      [20, 14, 'core/api'],
      [14, expect.closeTo(9.8, 9), 'core/api'],
      [expect.closeTo(9.8, 9), expect.closeTo(6.86, 9), 'core/api'],
    ]);
    expect(cut).toBeCloseTo(6.86, 9);
    // After a cut the bucket is empty: the next request waits one slot at the new rate.
    expect(waitedMs).toBe(Math.ceil(1000 / 6.86));
    expect(limiter.currentRate()).toBe(20);
  });

  it('the throttling answers to requests sent together cost one cut', async () => {
    // Prepare
    const { limiter, cuts } = limiterFactory({ ratePerSecond: 20, burst: 10 });
    const slots = await Promise.all(Array.from({ length: 8 }, () => limiter.acquire()));

    // Act
    for (const slot of slots) limiter.record(slot, 'throttled');

    // Assess
    expect(cuts).toHaveLength(1);
    expect(limiter.currentRate()).toBe(14);
  });

  it.each([
    ['without a deadline, waits again at the new rate', undefined, [100, 43], 1],
    ['with a deadline the second wait would pass, is refused', 1_120, [100], undefined],
  ])('a request waiting when the rate is cut, %s', async (_case, deadline, expectedSleeps, epoch) => {
    // Prepare: 10/s, no burst beyond one; the answer to the first request (a 429) comes while
    // the second waits for its slot.
    const clock = { now: 1_000 };
    const sleeps: number[] = [];
    let duringSleep: (() => void) | undefined;
    const limiter = createRateLimiter(
      { ratePerSecond: 10, burst: 1 },
      {
        now: () => clock.now,
        sleep: async (ms) => {
          sleeps.push(ms);
          duringSleep?.();
          duringSleep = undefined;
          clock.now += ms;
        },
      },
    );
    const first = await limiter.acquire();
    duringSleep = () => limiter.record(first, 'throttled');

    // Act
    const second = await limiter.acquire({ deadline }).catch((error: unknown) => error);

    // Assess: 100 ms at 10/s, then the rest of a slot at 7/s (the 100 ms already count: 0.7 of it).
    expect(sleeps).toEqual(expectedSleeps);
    if (epoch === undefined) expect(second).toBeInstanceOf(DeadlineExceededError);
    else expect(second).toEqual({ epoch, target: undefined });
  });

  it('keeps a fixed pace when not adaptive', async () => {
    // Prepare
    const { limiter, cuts } = limiterFactory({ ratePerSecond: 20, burst: 10, adaptive: false });

    // Act
    for (let i = 0; i < 5; i += 1) limiter.record(await limiter.acquire(), 'throttled');

    // Assess
    expect(cuts).toEqual([]);
    expect(limiter.currentRate()).toBe(20);
  });
});

describe('isThrottlingResponse', () => {
  it.each([
    [429, 'APIGW.0308', true],
    [429, undefined, true],
    [403, 'SVCSTG.SWR.4031032', true],
    [403, 'SVCSTG.SWR.4031042', true],
    [409, 'SVCSTG.SWR.4090023', false],
    [503, undefined, false],
    [403, 'SVCSTG.SWR.4030170', false],
    [404, 'APIGW.0101', false],
  ])('%d %s → %s', (status, code, throttling) => {
    // Act & Assess
    expect(isThrottlingResponse(status, code)).toBe(throttling);
  });
});

describe('the client feeds the limiter', () => {
  const origin = 'https://swr-api.test.example';
  const repo: Target = { kind: 'repo', namespace: 'core', repository: 'team/api' };
  const good = JSON.stringify({ self_auth: null, others_auths: [] });
  const agents: MockAgent[] = [];
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((agent) => agent.close()));
  });

  const clientWith = (replies: Array<{ status: number; body: string }>) => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    agents.push(agent);
    let sent = 0;
    agent
      .get(origin)
      .intercept({ path: () => true, method: 'GET' })
      .reply(() => {
        const reply = replies[Math.min(sent, replies.length - 1)] ?? { status: 599, body: '' };
        sent += 1;
        return {
          statusCode: reply.status,
          data: reply.body,
          responseOptions: { headers: { 'content-type': 'application/json' } },
        };
      })
      .persist();
    const { limiter, clock, cuts } = limiterFactory({ ratePerSecond: 20, burst: 10 });
    const client = createSwrClient({
      endpoint: origin,
      auth: createStaticTokenAuth('test-token'),
      dispatcher: agent,
      maxAttempts: 3,
      baseDelayMs: 1,
      maxDelayMs: 1,
      rateLimiter: limiter,
      now: () => clock.now,
      sleep: async (ms) => {
        clock.now += ms;
      },
      random: () => 0,
    });
    return { client, limiter, cuts, sent: () => sent };
  };

  const gatewayThrottled = JSON.stringify({
    error_code: 'APIGW.0308',
    error_msg: 'The throttling threshold has been reached',
  });
  const tooMany = JSON.stringify({
    errors: [{ errorCode: 'SVCSTG.SWR.4031032', errorMessage: 'too many requests' }],
  });
  const busy = JSON.stringify({ errors: [{ errorCode: 'SVCSTG.SWR.4090023', errorMessage: 'system busy' }] });

  it.each([
    ['429 APIGW.0308', 429, gatewayThrottled, 1],
    ['403 too many requests', 403, tooMany, 1],
    ['409 system busy', 409, busy, 0],
    ['503', 503, '', 0],
  ])('%s, then 200', async (_case, status, body, expectedCuts) => {
    // Prepare
    const { client, cuts, sent } = clientWith([
      { status, body },
      { status: 200, body: good },
    ]);

    // Act
    await client.getAccess(repo);

    // Assess
    expect(sent()).toBe(2);
    expect(cuts).toHaveLength(expectedCuts);
    if (expectedCuts > 0)
      expect(cuts[0]).toMatchObject({ fromPerSecond: 20, toPerSecond: 14, target: 'core/team/api' });
  });

  it('a call throttled on every attempt cuts the rate once per attempt and fails retryable', async () => {
    // Prepare
    const { client, limiter } = clientWith([{ status: 429, body: gatewayThrottled }]);

    // Act
    const error = await caught(client.getAccess(repo));

    // Assess
    expect(error).toMatchObject({ code: 'APIGW.0308', retryable: true, attempts: 3 });
    expect(limiter.currentRate()).toBeCloseTo(20 * 0.7 ** 3, 9);
  });
});

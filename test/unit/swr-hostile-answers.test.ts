/**
 * The client against hostile reality, on an undici MockAgent: successful answers that break the
 * documented shape are failed reads (never "nobody holds anything"); writes answered by something
 * that is not SWR are failures; gateway 404s are not "not found"; server text quoting a secret
 * never carries it into an error; every SWR request, retries included, waits for the rate limit.
 */
import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Target, UserAuth } from '../../lib/domain.ts';
import { registerSecrets } from '../../lib/redact.ts';
import { DeadlineExceededError, GatewayError, SwrApiError } from '../../lib/swr/api-errors.ts';
import { createStaticTokenAuth } from '../../lib/swr/auth.ts';
import { createSwrClient, type SwrClientOptions } from '../../lib/swr/client.ts';
import { createRateLimiter, type RateLimitWait } from '../../lib/swr/rate-limit.ts';
import { caught } from '../support/caught.ts';

const origin = 'https://swr-api.test.example';
const repo: Target = { kind: 'repo', namespace: 'core', repository: 'team/api' };
const alice: UserAuth = { user_id: 'a'.repeat(32), user_name: 'alice', auth: 3 };
const good = {
  id: 1,
  name: 'team/api',
  self_auth: { user_id: '0'.repeat(32), user_name: 'bot', auth: 7 },
  others_auths: [alice],
};

type Reply = { status: number; text: string; contentType?: string };

const agents: MockAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
});

const json = (value: unknown): string => JSON.stringify(value);

const harnessFactory = (script: Reply[], options: Partial<SwrClientOptions> = {}) => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  agents.push(agent);
  const paths: string[] = [];
  const clock = { now: 1_000_000 };
  agent
    .get(origin)
    .intercept({ path: () => true, method: () => true })
    .reply((opts) => {
      paths.push(`${opts.method} ${opts.path}`);
      const reply = script[Math.min(paths.length, script.length) - 1] ?? { status: 599, text: '' };
      return {
        statusCode: reply.status,
        data: reply.text,
        responseOptions: { headers: { 'content-type': reply.contentType ?? 'application/json' } },
      };
    })
    .persist();
  const client = createSwrClient({
    endpoint: origin,
    auth: createStaticTokenAuth('test-token'),
    dispatcher: agent,
    maxAttempts: 2,
    baseDelayMs: 1,
    maxDelayMs: 1,
    now: () => clock.now,
    sleep: async (ms) => {
      clock.now += ms;
    },
    random: () => 0,
    ...options,
  });
  return { client, paths, clock };
};

const withOthers = (others: unknown) => ({ ...good, others_auths: others });
const withEntry = (entry: Record<string, unknown>) => withOthers([entry]);
const { user_id: _id, ...noUserId } = alice;

describe('GET access: the documented shape or a failed read', () => {
  it.each([
    ['others_auths missing', json({ id: 1, name: 'team/api', self_auth: good.self_auth })],
    ['others_auths null', json(withOthers(null))],
    ['others_auths an object', json(withOthers({ 0: alice }))],
    ['others_auths a string', json(withOthers('[]'))],
    ['auth "3" (a string)', json(withEntry({ ...alice, auth: '3' }))],
    ['auth 2 (no such level)', json(withEntry({ ...alice, auth: 2 }))],
    ['user_id 123 (a number)', json(withEntry({ ...alice, user_id: 123 }))],
    ['user_id missing', json(withEntry(noUserId))],
    ['self_auth a string', json({ ...good, self_auth: 'bot' })],
    ['an HTML page with 200', '<!DOCTYPE html><html><body>Sign in</body></html>'],
    ['a truncated body', json(good).slice(0, 40)],
    ['an empty 200', ''],
    ['plain text', 'OK'],
    ['JSON null', 'null'],
    ['a JSON array', json([alice])],
  ])('%s → INVALID_RESPONSE, retryable, never an empty list', async (_case, text) => {
    // Prepare
    const { client, paths } = harnessFactory([{ status: 200, text, contentType: 'text/html' }]);

    // Act
    const error = await caught(client.getAccess(repo));

    // Assess
    expect(error).toBeInstanceOf(SwrApiError);
    expect(error).toMatchObject({
      code: 'INVALID_RESPONSE',
      retryable: true,
      attempts: 2,
      target: 'core/team/api',
    });
    expect(paths).toHaveLength(2);
  });

  it.each([
    ['self_auth absent', { id: 1, name: 'team/api', others_auths: [alice] }, undefined],
    ['self_auth null', { ...good, self_auth: null }, undefined],
    ['user_name absent', withEntry({ user_id: alice.user_id, auth: 3 }), '0'.repeat(32)],
  ])('accepts %s', async (_case, body, self) => {
    // Prepare
    const { client } = harnessFactory([{ status: 200, text: json(body) }]);

    // Act
    const access = await client.getAccess(repo);

    // Assess
    expect(access.selfUserId).toBe(self);
    expect(access.users.map((u) => [u.user_id, u.auth])).toEqual([[alice.user_id, 3]]);
  });

  it('recovers when the next answer is right', async () => {
    // Prepare
    const { client } = harnessFactory([
      { status: 200, text: json(withOthers(null)) },
      { status: 200, text: json(good) },
    ]);

    // Act
    const access = await client.getAccess(repo);

    // Assess
    expect(access.users).toEqual([alice]);
  });
});

describe('repository listings: an array of objects with a string name, or a failed read', () => {
  it.each([
    ['an object', json({ repos: [{ name: 'a' }] })],
    ['a name missing', json([{ name: 'a' }, { namespace: 'core' }])],
    ['a name that is a number', json([{ name: 42 }])],
    ['an HTML page', '<html>maintenance</html>'],
    ['a truncated body', '[{"name":"a"},{"na'],
    ['an empty 200', ''],
  ])('%s → INVALID_RESPONSE, retryable', async (_case, text) => {
    // Prepare
    const { client } = harnessFactory([{ status: 200, text }]);

    // Act
    const error = await caught(client.listRepositories('core'));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_RESPONSE', retryable: true, target: 'core' });
  });
});

describe('writes answered 2xx by something else', () => {
  it.each([
    ['POST', (c: ReturnType<typeof createSwrClient>) => c.grant(repo, [alice])],
    ['PATCH', (c: ReturnType<typeof createSwrClient>) => c.change(repo, [alice])],
    ['DELETE', (c: ReturnType<typeof createSwrClient>) => c.revoke(repo, [alice.user_id])],
  ])('%s answered 200 with an HTML page is INVALID_RESPONSE, retryable', async (method, act) => {
    // Prepare
    const page = {
      status: 200,
      text: '<html><body>Welcome to the proxy</body></html>',
      contentType: 'text/html',
    };
    const { client, paths } = harnessFactory([page]);

    // Act
    const error = await caught(act(client));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_RESPONSE', retryable: true, status: 200, method });
    expect(paths.every((p) => p.startsWith(method))).toBe(true);
  });

  it.each([
    ['an empty body', ''],
    ['a JSON body', '{}'],
  ])('a write answered 201 with %s succeeds', async (_case, text) => {
    // Prepare
    const { client } = harnessFactory([{ status: 201, text }]);

    // Act & Assess
    await expect(client.grant(repo, [alice])).resolves.toBeUndefined();
  });
});

describe('gateway answers', () => {
  it.each([
    [
      'APIGW.0101',
      json({ error_code: 'APIGW.0101', error_msg: 'The API does not exist or has not been published' }),
    ],
    ['a non-JSON page', '<html>404 Not Found</html>'],
  ])('a 404 %s on a revoke is a retryable gateway error, never "already revoked"', async (_case, text) => {
    // Prepare
    const { client } = harnessFactory([{ status: 404, text }]);

    // Act
    const error = await caught(client.revoke(repo, [alice.user_id]));

    // Assess
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ retryable: true });
    expect((error as Error).message).toContain('check SWR_ENDPOINT');
  });

  it.each([
    [502, 'Bad Gateway'],
    [503, 'Service Temporarily Unavailable'],
    [504, 'Gateway Time-out'],
  ])('a %i page from a proxy is retryable', async (status, reason) => {
    // Prepare
    const { client } = harnessFactory([
      {
        status,
        text: `<html><head><title>${status} ${reason}</title></head></html>`,
        contentType: 'text/html',
      },
    ]);

    // Act
    const error = await caught(client.getAccess(repo));

    // Assess
    expect(error).toMatchObject({ code: `HTTP_${status}`, retryable: true, attempts: 2 });
  });
});

describe('secrets in server text', () => {
  it('redacts credentials an error body echoes', async () => {
    // Prepare
    const token = 'tok-ECHOED-5c6d7e8f';
    const password = 'pw-ECHOED-1a2b3c4d';
    registerSecrets([token, password]);
    const echo = json({
      error_code: 'SVCSTG.SWR.4000014',
      error_msg: `bad request (X-Auth-Token: ${token}; Authorization: SDK-HMAC-SHA256 Access=AKEXAMPLE, Signature=${'ab'.repeat(32)}; body: {"password":"${password}"})`,
    });
    const { client } = harnessFactory([{ status: 400, text: echo }], { auth: createStaticTokenAuth(token) });

    // Act
    const error = await caught(client.getAccess(repo));

    // Assess
    const message = (error as Error).message;
    expect(message).toContain('SVCSTG.SWR.4000014');
    expect(message).not.toContain(token);
    expect(message).not.toContain(password);
    expect(message).not.toContain('ab'.repeat(32));
  });
});

describe('rate limit', () => {
  it('waits for a token before every request, retries included', async () => {
    // Prepare: 10 per second, burst 2; each wait is recorded.
    const waits: RateLimitWait[] = [];
    const clock = { now: 1_000_000 };
    const sleep = async (ms: number) => {
      clock.now += ms;
    };
    const limiter = createRateLimiter(
      { ratePerSecond: 10, burst: 2 },
      { now: () => clock.now, sleep },
      { onWait: (wait) => waits.push(wait) },
    );
    const { client, paths } = harnessFactory(
      [
        { status: 503, text: '' },
        { status: 200, text: json(good) },
        { status: 200, text: json(good) },
        { status: 200, text: json(good) },
      ],
      { rateLimiter: limiter, now: () => clock.now, sleep },
    );

    // Act: one GET with a retry (2 requests), then two more GETs.
    await client.getAccess(repo);
    await client.getAccess(repo);
    await client.getAccess(repo);

    // Assess: 4 requests, the burst covers 2, the others waited ~100 ms each.
    expect(paths).toHaveLength(4);
    expect(waits.length).toBeGreaterThanOrEqual(1);
    expect(waits.every((w) => w.waitMs > 0 && w.waitMs <= 100 && w.target === 'core/team/api')).toBe(true);
  });

  it('never waits past the deadline: a retryable DeadlineExceededError instead', async () => {
    // Prepare
    const clock = { now: 1_000_000 };
    const limiter = createRateLimiter(
      { ratePerSecond: 1, burst: 1 },
      {
        now: () => clock.now,
        sleep: async (ms) => {
          clock.now += ms;
        },
      },
    );
    const { client, paths } = harnessFactory([{ status: 200, text: json(good) }], {
      rateLimiter: limiter,
      now: () => clock.now,
    });
    await client.getAccess(repo);

    // Act: the next token is a second away, the deadline half a second.
    const error = await caught(client.getAccess(repo, { deadline: clock.now + 500 }));

    // Assess
    expect(error).toBeInstanceOf(DeadlineExceededError);
    expect(error).toMatchObject({ retryable: true, code: 'DEADLINE_EXCEEDED' });
    expect(paths).toHaveLength(1);
  });
});

describe('createRateLimiter', () => {
  const limiterFactory = (ratePerSecond: number, burst: number) => {
    const clock = { now: 0 };
    const sleeps: number[] = [];
    const waits: number[] = [];
    const limiter = createRateLimiter(
      { ratePerSecond, burst },
      {
        now: () => clock.now,
        sleep: async (ms) => {
          sleeps.push(ms);
          clock.now += ms;
        },
      },
      { onWait: (wait) => waits.push(wait.waitMs) },
    );
    return { limiter, clock, sleeps, waits };
  };

  it('lets a burst through at once, then paces at the rate', async () => {
    // Prepare
    const { limiter, sleeps } = limiterFactory(50, 3);

    // Act
    for (let i = 0; i < 6; i += 1) await limiter.acquire();

    // Assess: 3 free, then one token every 20 ms.
    expect(sleeps).toEqual([20, 20, 20]);
  });

  it('refills while idle, up to the burst', async () => {
    // Prepare
    const { limiter, clock, sleeps } = limiterFactory(10, 2);
    await limiter.acquire();
    await limiter.acquire();

    // Act
    clock.now += 10_000;
    await limiter.acquire();
    await limiter.acquire();
    await limiter.acquire();

    // Assess
    expect(sleeps).toEqual([100]);
  });

  it('serves concurrent callers in order, each a slot later', async () => {
    // Prepare: all three ask at the same instant (the clock does not move while they wait).
    const waits: number[] = [];
    const limiter = createRateLimiter(
      { ratePerSecond: 10, burst: 1 },
      { now: () => 0, sleep: async () => {} },
      { onWait: (wait) => waits.push(wait.waitMs) },
    );

    // Act
    await Promise.all([limiter.acquire(), limiter.acquire(), limiter.acquire()]);

    // Assess
    expect(waits).toEqual([100, 200]);
  });

  it('gives the slot back when the wait is aborted', async () => {
    // Prepare
    const clock = { now: 0 };
    const limiter = createRateLimiter(
      { ratePerSecond: 1, burst: 1 },
      { now: () => clock.now, sleep: async () => Promise.reject(new Error('aborted')) },
    );
    await limiter.acquire();

    // Act
    const error = await caught(limiter.acquire());
    clock.now += 1000;
    const next = limiter.acquire();

    // Assess
    expect(error).toBeInstanceOf(DeadlineExceededError);
    await expect(next).resolves.toMatchObject({ epoch: 0 });
  });
});

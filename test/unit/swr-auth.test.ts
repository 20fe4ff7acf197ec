import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Target } from '../../lib/domain.ts';
import { ConfigError, ErrorCodes, SyncError } from '../../lib/errors.ts';
import { AuthError } from '../../lib/swr/api-errors.ts';
import { type AuthConfig, assertEndpoint, createAuthProvider } from '../../lib/swr/auth.ts';
import { createSwrServices, type SwrServicesConfig } from '../../lib/swr/index.ts';
import { verifySignature } from '../../lib/swr/signer.ts';
import { caught } from '../support/caught.ts';

const swrOrigin = 'https://swr-api.test.example';
const iamOrigin = 'https://iam.test.example';
const secrets = {
  token: 'STATIC-TOKEN-must-not-leak',
  password: 'Passw0rd-must-not-leak',
  sk: 'SecretKey-must-not-leak-0123456789',
} as const;
const target: Target = { kind: 'repo', namespace: 'core', repository: 'team/api' };
const accessPath = '/v2/manage/namespaces/core/repos/team$api/access';
const emptyAccess = { id: 1, name: 'team/api', self_auth: null, others_auths: [] };
const start = Date.UTC(2024, 0, 1);

const passwordAuth = (overrides: Partial<Extract<AuthConfig, { kind: 'password' }>> = {}): AuthConfig => ({
  kind: 'password',
  domain: 'acme',
  user: 'swr-sync',
  password: secrets.password,
  project: 'ap-southeast-1',
  ...overrides,
});

interface Recorded {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

const agents: MockAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
});

/** A MockAgent for both origins, a movable clock, and services built on them. */
const harnessFactory = (auth: AuthConfig, overrides: Partial<SwrServicesConfig> = {}) => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  agents.push(agent);
  const clock = { now: start };
  const services = createSwrServices(
    {
      swrEndpoint: swrOrigin,
      iamEndpoint: iamOrigin,
      auth,
      retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 },
      ...overrides,
    },
    { dispatcher: agent, now: () => clock.now, sleep: async () => {}, random: () => 0 },
  );
  const record = (
    into: Recorded[],
    opts: { method: string; path: string; headers?: unknown; body?: unknown },
  ) =>
    into.push({
      method: opts.method,
      path: opts.path,
      headers: Object.fromEntries(
        Object.entries((opts.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]),
      ),
      body: typeof opts.body === 'string' && opts.body !== '' ? JSON.parse(opts.body) : undefined,
    });
  return { agent, clock, services, swr: agent.get(swrOrigin), iam: agent.get(iamOrigin), record };
};

/** IAM that issues token-1, token-2, … each valid for `lifetimeMs` from the harness clock. */
const issueTokens = (
  harness: ReturnType<typeof harnessFactory>,
  seen: Recorded[],
  lifetimeMs = 24 * 3_600_000,
) => {
  harness.iam
    .intercept({ path: '/v3/auth/tokens?nocatalog=true', method: 'POST' })
    .reply<object>((opts) => {
      harness.record(seen, opts);
      return {
        statusCode: 201,
        data: { token: { expires_at: new Date(harness.clock.now + lifetimeMs).toISOString() } },
        responseOptions: { headers: { 'x-subject-token': `token-${seen.length}` } },
      };
    })
    .persist();
};

describe('assertEndpoint', () => {
  it.each([
    ['https://swr-api.ap-southeast-1.myhuaweicloud.com', 'https://swr-api.ap-southeast-1.myhuaweicloud.com'],
    ['https://swr-api.eu-west-101.myhuaweicloud.eu/', 'https://swr-api.eu-west-101.myhuaweicloud.eu'],
    ['http://127.0.0.1:4010', 'http://127.0.0.1:4010'],
    ['http://127.9.8.7', 'http://127.9.8.7'],
    ['http://localhost:8080', 'http://localhost:8080'],
    ['http://[::1]:9000', 'http://[::1]:9000'],
  ])('accepts %s', (url, origin) => {
    // Act & Assess
    expect(assertEndpoint(url, 'SWR_ENDPOINT')).toBe(origin);
  });

  it.each([
    ['plain http to a public host', 'http://swr-api.ap-southeast-1.myhuaweicloud.com'],
    ['plain http to a private address', 'http://10.0.0.1:8080'],
    ['plain http to a look-alike host', 'http://127.0.0.1.evil.example'],
    ['another scheme', 'ftp://swr-api.example.com'],
    ['not a URL', 'swr-api.example.com'],
    ['a path', 'https://swr-api.example.com/v2'],
    ['a query', 'https://swr-api.example.com?x=1'],
  ])('rejects %s', (_why, url) => {
    // Act & Assess
    expect(() => assertEndpoint(url, 'SWR_ENDPOINT')).toThrow(ConfigError);
  });

  it('names the setting but never echoes embedded credentials', () => {
    // Act
    const error = (() => {
      try {
        assertEndpoint(`https://user:${secrets.password}@swr-api.example.com`, 'SWR_ENDPOINT');
      } catch (e) {
        return e as Error;
      }
      return undefined;
    })();

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.message).toContain('SWR_ENDPOINT');
    expect(error?.message).not.toContain(secrets.password);
  });

  it('is enforced when the services are built', () => {
    // Act & Assess
    expect(() =>
      createSwrServices({
        swrEndpoint: 'http://swr-api.example.com',
        iamEndpoint: iamOrigin,
        auth: { kind: 'token', token: secrets.token },
      }),
    ).toThrow(ConfigError);
  });
});

describe('auth configuration', () => {
  it.each([
    ['token without token', { kind: 'token', token: '' }],
    ['password without password', { ...passwordAuth(), password: '' }],
    ['aksk without sk', { kind: 'aksk', ak: 'AK', sk: '', projectId: 'p' }],
    ['unknown kind', { kind: 'kerberos' }],
  ])('refuses %s', (_why, config) => {
    // Act & Assess
    expect(() =>
      createAuthProvider(config as AuthConfig, { iamEndpoint: iamOrigin, iamDispatcher: new MockAgent() }),
    ).toThrow(ConfigError);
  });
});

describe('IAM password token', () => {
  it('asks IAM with the password body and sends the X-Subject-Token to SWR', async () => {
    // Prepare
    const harness = harnessFactory(passwordAuth());
    const tokenRequests: Recorded[] = [];
    const swrRequests: Recorded[] = [];
    issueTokens(harness, tokenRequests);
    harness.swr
      .intercept({ path: accessPath, method: 'GET' })
      .reply<object>((opts) => {
        harness.record(swrRequests, opts);
        return { statusCode: 200, data: emptyAccess };
      })
      .persist();

    // Act
    await harness.services.swr.getAccess(target);
    await harness.services.swr.getAccess(target);

    // Assess
    expect(tokenRequests).toHaveLength(1);
    expect(tokenRequests[0]?.headers['content-type']).toBe('application/json;charset=utf8');
    expect(tokenRequests[0]?.body).toEqual({
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { domain: { name: 'acme' }, name: 'swr-sync', password: secrets.password } },
        },
        scope: { project: { name: 'ap-southeast-1' } },
      },
    });
    expect(swrRequests.map((r) => r.headers['x-auth-token'])).toEqual(['token-1', 'token-1']);
  });

  it('exchanges the user token for an agency token when an agency is configured', async () => {
    // Prepare
    const harness = harnessFactory(passwordAuth({ agency: 'swr-admin', agencyDomain: 'acme-prod' }));
    const tokenRequests: Recorded[] = [];
    const swrRequests: Recorded[] = [];
    issueTokens(harness, tokenRequests);
    harness.swr.intercept({ path: accessPath, method: 'GET' }).reply<object>((opts) => {
      harness.record(swrRequests, opts);
      return { statusCode: 200, data: emptyAccess };
    });

    // Act
    await harness.services.swr.getAccess(target);

    // Assess
    expect(tokenRequests).toHaveLength(2);
    expect(tokenRequests[0]?.headers['x-auth-token']).toBeUndefined();
    expect(tokenRequests[1]?.headers['x-auth-token']).toBe('token-1');
    expect(tokenRequests[1]?.body).toEqual({
      auth: {
        identity: {
          methods: ['assume_role'],
          assume_role: { domain_name: 'acme-prod', agency_name: 'swr-admin' },
        },
        scope: { project: { name: 'ap-southeast-1' } },
      },
    });
    expect(swrRequests[0]?.headers['x-auth-token']).toBe('token-2');
  });

  it('shares one token request between 10 parallel calls', async () => {
    // Prepare
    const harness = harnessFactory(passwordAuth());
    const tokenRequests: Recorded[] = [];
    issueTokens(harness, tokenRequests);
    harness.swr.intercept({ path: accessPath, method: 'GET' }).reply(200, emptyAccess).times(10);

    // Act
    const results = await Promise.all(
      Array.from({ length: 10 }, () => harness.services.swr.getAccess(target)),
    );

    // Assess
    expect(results).toHaveLength(10);
    expect(tokenRequests).toHaveLength(1);
  });

  it('renews the token shortly before it expires', async () => {
    // Prepare
    const harness = harnessFactory(passwordAuth());
    const tokenRequests: Recorded[] = [];
    const swrRequests: Recorded[] = [];
    issueTokens(harness, tokenRequests, 60 * 60_000);
    harness.swr
      .intercept({ path: accessPath, method: 'GET' })
      .reply<object>((opts) => {
        harness.record(swrRequests, opts);
        return { statusCode: 200, data: emptyAccess };
      })
      .persist();

    // Act
    await harness.services.swr.getAccess(target);
    harness.clock.now += 54 * 60_000;
    await harness.services.swr.getAccess(target);
    harness.clock.now += 2 * 60_000;
    await harness.services.swr.getAccess(target);

    // Assess
    expect(swrRequests.map((r) => r.headers['x-auth-token'])).toEqual(['token-1', 'token-1', 'token-2']);
  });

  it('after a 401 gets one fresh token and tries again', async () => {
    // Prepare
    const harness = harnessFactory(passwordAuth());
    const tokenRequests: Recorded[] = [];
    const swrRequests: Recorded[] = [];
    issueTokens(harness, tokenRequests);
    harness.swr
      .intercept({ path: accessPath, method: 'GET' })
      .reply<object>((opts) => {
        harness.record(swrRequests, opts);
        return swrRequests.length === 1
          ? { statusCode: 401, data: { error_code: 'SVCSTG.SWR.4010000', error_msg: 'token expired' } }
          : { statusCode: 200, data: emptyAccess };
      })
      .persist();

    // Act
    const access = await harness.services.swr.getAccess(target);

    // Assess
    expect(access.users).toEqual([]);
    expect(tokenRequests).toHaveLength(2);
    expect(swrRequests.map((r) => r.headers['x-auth-token'])).toEqual(['token-1', 'token-2']);
  });

  it('10 parallel 401s with the same stale token lead to one new token', async () => {
    // Prepare
    const harness = harnessFactory(passwordAuth());
    const tokenRequests: Recorded[] = [];
    issueTokens(harness, tokenRequests);
    harness.swr
      .intercept({ path: accessPath, method: 'GET' })
      .reply<object>((opts) => {
        const token = (opts.headers as Record<string, string>)['X-Auth-Token'];
        return token === 'token-1'
          ? { statusCode: 401, data: { error_code: 'SVCSTG.SWR.4010000', error_msg: 'expired' } }
          : { statusCode: 200, data: emptyAccess };
      })
      .persist();

    // Act
    await Promise.all(Array.from({ length: 10 }, () => harness.services.swr.getAccess(target)));

    // Assess
    expect(tokenRequests).toHaveLength(2);
  });

  it('ignores a late invalidate for a token that was already replaced', async () => {
    // Prepare
    const harness = harnessFactory(passwordAuth());
    const tokenRequests: Recorded[] = [];
    issueTokens(harness, tokenRequests);
    const auth = harness.services.auth;
    const request = { method: 'GET', url: new URL(accessPath, swrOrigin), body: undefined };
    const stale = await auth.headers(request);
    auth.invalidate(stale);
    const fresh = await auth.headers(request);

    // Act
    auth.invalidate(stale);
    const after = await auth.headers(request);

    // Assess
    expect([stale, fresh, after].map((h) => h['X-Auth-Token'])).toEqual(['token-1', 'token-2', 'token-2']);
    expect(tokenRequests).toHaveLength(2);
  });

  it('a second 401 is a permanent AuthError, with no further attempt', async () => {
    // Prepare
    const harness = harnessFactory(passwordAuth());
    const tokenRequests: Recorded[] = [];
    const swrRequests: Recorded[] = [];
    issueTokens(harness, tokenRequests);
    harness.swr
      .intercept({ path: accessPath, method: 'GET' })
      .reply<object>((opts) => {
        harness.record(swrRequests, opts);
        return {
          statusCode: 401,
          data: { error_code: 'SVCSTG.SWR.4010000', error_msg: 'authentication failed' },
        };
      })
      .persist();

    // Act
    const error = await caught(harness.services.swr.getAccess(target));

    // Assess
    expect(error).toBeInstanceOf(AuthError);
    expect(error).toMatchObject({ code: 'SVCSTG.SWR.4010000', retryable: false, status: 401, attempts: 1 });
    expect(swrRequests).toHaveLength(2);
    expect(tokenRequests).toHaveLength(2);
  });

  it.each([
    [401, AuthError, ErrorCodes.auth, false],
    [400, SyncError, 'HTTP_400', false],
    [503, SyncError, 'HTTP_503', true],
  ])(
    'IAM answering %d to the token request fails the call (%s, %s)',
    async (status, type, code, retryable) => {
      // Prepare
      const harness = harnessFactory(passwordAuth());
      harness.iam
        .intercept({ path: '/v3/auth/tokens?nocatalog=true', method: 'POST' })
        .reply(status, '')
        .persist();

      // Act
      const error = await caught(harness.services.swr.getAccess(target));

      // Assess
      expect(error).toBeInstanceOf(type);
      expect(error).toMatchObject({ code, retryable });
    },
  );
});

describe('static token and AK/SK', () => {
  it('a static token refused twice is a permanent AuthError', async () => {
    // Prepare
    const harness = harnessFactory({ kind: 'token', token: secrets.token });
    const swrRequests: Recorded[] = [];
    harness.swr
      .intercept({ path: accessPath, method: 'GET' })
      .reply<object>((opts) => {
        harness.record(swrRequests, opts);
        return { statusCode: 401, data: '' };
      })
      .persist();

    // Act
    const error = await caught(harness.services.swr.getAccess(target));

    // Assess
    expect(error).toMatchObject({ name: 'AuthError', code: ErrorCodes.auth, retryable: false });
    expect(swrRequests.map((r) => r.headers['x-auth-token'])).toEqual([secrets.token, secrets.token]);
  });

  it('signs each SWR request so that the server-side check accepts it', async () => {
    // Prepare
    const harness = harnessFactory({ kind: 'aksk', ak: 'AKEXAMPLE', sk: secrets.sk, projectId: 'proj1' });
    const swrRequests: Recorded[] = [];
    harness.swr.intercept({ path: accessPath, method: 'POST' }).reply<object>((opts) => {
      harness.record(swrRequests, opts);
      return { statusCode: 201, data: '' };
    });
    const users = [{ user_id: 'fb3f175c1fd146ab8cdae3272be6107b', user_name: 'user01', auth: 1 as const }];

    // Act
    await harness.services.swr.grant(target, users);

    // Assess
    const seen = swrRequests[0] as Recorded;
    const verdict = verifySignature(
      {
        method: seen.method,
        url: new URL(seen.path, swrOrigin),
        headers: { ...seen.headers, host: new URL(swrOrigin).host },
        body: JSON.stringify(seen.body),
      },
      (ak) => (ak === 'AKEXAMPLE' ? secrets.sk : undefined),
      { now: start },
    );
    expect(verdict).toMatchObject({ ok: true, ak: 'AKEXAMPLE' });
    expect(seen.headers['x-project-id']).toBe('proj1');
    expect(JSON.stringify(seen.headers)).not.toContain(secrets.sk);
  });
});

describe('AK/SK on IAM, a global service', () => {
  const domainId = 'd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0';

  it('names the account in a signed X-Domain-Id and sends no project on IAM calls', async () => {
    // Prepare
    const harness = harnessFactory({
      kind: 'aksk',
      ak: 'AKEXAMPLE',
      sk: secrets.sk,
      projectId: 'proj1',
      domainId,
    });
    const iamRequests: Recorded[] = [];
    harness.iam.intercept({ path: '/v3/users?name=John%20Smith', method: 'GET' }).reply<object>((opts) => {
      harness.record(iamRequests, opts);
      return { statusCode: 200, data: { users: [{ id: 'f'.repeat(32), name: 'John Smith' }] } };
    });

    // Act
    const user = await harness.services.users.findByName('John Smith');

    // Assess
    expect(user).toEqual({ id: 'f'.repeat(32), name: 'John Smith' });
    const seen = iamRequests[0] as Recorded;
    expect(seen.headers['x-domain-id']).toBe(domainId);
    expect(seen.headers['x-project-id']).toBeUndefined();
    expect(seen.headers.authorization).toContain('SignedHeaders=host;x-domain-id;x-sdk-date,');
    const verdict = verifySignature(
      {
        method: 'GET',
        url: new URL(seen.path, iamOrigin),
        headers: { ...seen.headers, host: new URL(iamOrigin).host },
      },
      (ak) => (ak === 'AKEXAMPLE' ? secrets.sk : undefined),
      { now: start },
    );
    expect(verdict).toMatchObject({ ok: true });
  });

  it('refuses an IAM call under AK/SK without an account id, before sending it', async () => {
    // Prepare
    const harness = harnessFactory({ kind: 'aksk', ak: 'AKEXAMPLE', sk: secrets.sk, projectId: 'proj1' });

    // Act
    const error = await caught(harness.services.users.findByName('alice'));

    // Assess
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('HUAWEICLOUD_DOMAIN_ID');
  });
});

describe('secrets stay out of errors', () => {
  const failures: Array<[string, AuthConfig, (h: ReturnType<typeof harnessFactory>) => void]> = [
    [
      'IAM refusing the password',
      passwordAuth(),
      (h) => {
        h.iam.intercept({ path: '/v3/auth/tokens?nocatalog=true', method: 'POST' }).reply(401, {
          error: { code: 401, message: 'The username or password is wrong.', title: 'Unauthorized' },
        });
      },
    ],
    [
      'SWR refusing a token twice',
      { kind: 'token', token: secrets.token },
      (h) => {
        h.swr.intercept({ path: accessPath, method: 'GET' }).reply(401, '').persist();
      },
    ],
    [
      'SWR failing with 500 on a signed request',
      { kind: 'aksk', ak: 'AKEXAMPLE', sk: secrets.sk, projectId: 'p' },
      (h) => {
        h.swr.intercept({ path: accessPath, method: 'GET' }).reply(500, 'internal').persist();
      },
    ],
    [
      'no mock at all (the mock error echoes request headers)',
      { kind: 'token', token: secrets.token },
      () => {},
    ],
  ];

  it.each(failures)('%s', async (_what, auth, arrange) => {
    // Prepare
    const harness = harnessFactory(auth);
    arrange(harness);

    // Act
    const error = (await caught(harness.services.swr.getAccess(target))) as Error;

    // Assess
    expect(error).toBeInstanceOf(SyncError);
    const visible = [error.message, String(error), JSON.stringify(error), error.stack ?? ''].join('\n');
    for (const secret of Object.values(secrets)) expect(visible).not.toContain(secret);
  });
});

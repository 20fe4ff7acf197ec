import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Target, UserAuth } from '../../lib/domain.ts';
import { ErrorCodes, InvalidNameError } from '../../lib/errors.ts';
import { NetworkError, SwrApiError } from '../../lib/swr/api-errors.ts';
import { createStaticTokenAuth } from '../../lib/swr/auth.ts';
import { createSwrClient, type SwrClientOptions } from '../../lib/swr/client.ts';
import type { RequestEvent } from '../../lib/swr/http.ts';
import type { RetryEvent } from '../../lib/swr/retry.ts';
import { caught } from '../support/caught.ts';

const origin = 'https://swr-api.test.example';
const repo: Target = { kind: 'repo', namespace: 'core', repository: 'team/api' };
const ns: Target = { kind: 'namespace', namespace: 'core' };
const repoPath = '/v2/manage/namespaces/core/repos/team$api/access';
const nsPath = '/v2/manage/namespaces/core/access';

const ids = {
  self: '00000000000000000000000000000000',
  alice: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  bob: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',
  carol: 'cccccccccccccccccccccccccccccccc',
} as const;

const userFactory = (name: keyof typeof ids, auth: UserAuth['auth'] = 1): UserAuth => ({
  user_id: ids[name],
  user_name: name,
  auth,
});

const accessBody = (users: UserAuth[], extra: Record<string, unknown> = {}) => ({
  id: 42,
  name: 'team/api',
  self_auth: { user_id: ids.self, user_name: 'sync-bot', auth: 7 },
  others_auths: users,
  ...extra,
});

const swrError = (code: string, message = 'detail') => ({
  errors: [{ errorCode: code, errorMessage: message }],
  error_code: code,
  error_msg: message,
});

interface Seen {
  method: string;
  path: string;
  body: unknown;
  headers: Record<string, string>;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

const agents: MockAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
});

/**
 * A client on a MockAgent whose SWR answers each request from `script` in order, recording
 * what was sent. The clock only moves when the client sleeps.
 */
const harnessFactory = (script: Reply[], options: Partial<SwrClientOptions> = {}) => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  agents.push(agent);
  const seen: Seen[] = [];
  const sleeps: number[] = [];
  const requests: RequestEvent[] = [];
  const retries: RetryEvent[] = [];
  const clock = { now: 1_000_000 };
  agent
    .get(origin)
    .intercept({ path: () => true, method: () => true })
    .reply((opts) => {
      seen.push({
        method: opts.method,
        path: opts.path,
        body: typeof opts.body === 'string' && opts.body !== '' ? JSON.parse(opts.body) : undefined,
        headers: opts.headers as Record<string, string>,
      });
      const reply = script[seen.length - 1];
      if (reply === undefined) return { statusCode: 599, data: 'script exhausted' };
      return {
        statusCode: reply.status,
        data:
          reply.body === undefined
            ? ''
            : typeof reply.body === 'string'
              ? reply.body
              : JSON.stringify(reply.body),
        responseOptions: { headers: { 'content-type': 'application/json', ...reply.headers } },
      };
    })
    .persist();
  const client = createSwrClient({
    endpoint: origin,
    auth: createStaticTokenAuth('test-token'),
    dispatcher: agent,
    maxAttempts: 3,
    baseDelayMs: 100,
    maxDelayMs: 1_000,
    now: () => clock.now,
    sleep: async (ms) => {
      sleeps.push(ms);
      clock.now += ms;
    },
    random: () => 0.5,
    onRequest: (event) => requests.push(event),
    onRetry: (event) => retries.push(event),
    ...options,
  });
  const calls = () => seen.map((s) => `${s.method} ${s.path}`);
  return { client, seen, sleeps, requests, retries, clock, calls };
};

describe('getAccess', () => {
  it('reads self_auth and others_auths from the repository path with $ for /', async () => {
    // Prepare
    const users = [userFactory('alice', 3), userFactory('bob', 7)];
    const { client, seen } = harnessFactory([
      { status: 200, body: accessBody(users, { creator: 'x', extra: [1] }) },
    ]);

    // Act
    const access = await client.getAccess(repo);

    // Assess
    expect(seen[0]?.path).toBe(repoPath);
    expect(seen[0]?.headers).toMatchObject({
      'X-Auth-Token': 'test-token',
      'Content-Type': 'application/json',
    });
    expect(access).toEqual({ selfUserId: ids.self, users });
  });

  it('reads the namespace path and tolerates a missing self_auth', async () => {
    // Prepare
    const { client, seen } = harnessFactory([
      {
        status: 200,
        body: { id: 1, name: 'core', creator_name: 'x', others_auths: [userFactory('carol', 1)] },
      },
    ]);

    // Act
    const access = await client.getAccess(ns);

    // Assess
    expect(seen[0]?.path).toBe(nsPath);
    expect(access).toEqual({ selfUserId: undefined, users: [userFactory('carol', 1)] });
  });

  it.each([
    ['an unknown level', accessBody([{ ...userFactory('alice'), auth: 5 as UserAuth['auth'] }])],
    ['an HTML page', '<html>maintenance</html>'],
    ['others_auths of the wrong type', { others_auths: 'none' }],
  ])('treats a 200 with %s as unreadable (retryable), never as "no users"', async (_what, body) => {
    // Prepare
    const { client, seen } = harnessFactory([
      { status: 200, body },
      { status: 200, body },
      { status: 200, body },
    ]);

    // Act
    const error = await caught(client.getAccess(repo));

    // Assess
    expect(error).toBeInstanceOf(SwrApiError);
    expect(error).toMatchObject({
      code: 'INVALID_RESPONSE',
      retryable: true,
      attempts: 3,
      target: 'core/team/api',
    });
    expect(seen).toHaveLength(3);
  });
});

describe('validation before any request', () => {
  it.each([
    ['namespace with ..', () => ({ kind: 'namespace', namespace: 'a..b' }) as Target, [] as UserAuth[]],
    ['repository with %2f', () => ({ kind: 'repo', namespace: 'core', repository: 'a%2fb' }) as Target, []],
    ['repository with $', () => ({ kind: 'repo', namespace: 'core', repository: 'a$b' }) as Target, []],
    ['user id not hex', () => repo, [{ user_id: '../x', user_name: 'x', auth: 1 } as UserAuth]],
    ['level 2', () => repo, [{ ...userFactory('alice'), auth: 2 as UserAuth['auth'] }]],
    ['empty user name', () => repo, [{ ...userFactory('alice'), user_name: '' }]],
    ['a user listed twice', () => repo, [userFactory('alice', 1), userFactory('alice', 3)]],
  ])('%s', async (_what, makeTarget, users) => {
    // Prepare
    const { client, seen } = harnessFactory([]);

    // Act
    const error = await caught(
      users.length === 0 ? client.getAccess(makeTarget()) : client.grant(makeTarget(), users),
    );

    // Assess
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(error).toMatchObject({ code: ErrorCodes.invalidName, retryable: false });
    expect(seen).toHaveLength(0);
  });
});

describe('grant', () => {
  it.each([
    ['repository', repo, repoPath, 201],
    ['namespace', ns, nsPath, 200],
  ])('POSTs the array to the %s path and accepts %d', async (_kind, target, path, status) => {
    // Prepare
    const { client, seen } = harnessFactory([{ status }]);
    const users = [{ ...userFactory('alice', 3), extra: 'dropped' } as UserAuth, userFactory('bob', 1)];

    // Act
    await client.grant(target, users);

    // Assess
    expect(seen.map((s) => [s.method, s.path, s.body])).toEqual([
      ['POST', path, [userFactory('alice', 3), userFactory('bob', 1)]],
    ]);
  });

  it('sends nothing for an empty array', async () => {
    // Prepare
    const { client, seen } = harnessFactory([]);

    // Act
    await client.grant(repo, []);

    // Assess
    expect(seen).toHaveLength(0);
  });

  it('on 409 "exists": re-reads, PATCHes who holds another level, POSTs who holds nothing', async () => {
    // Prepare
    const { client, seen } = harnessFactory([
      { status: 409, body: swrError('SVCSTG.SWR.4090089', 'permission already exists') },
      { status: 200, body: accessBody([userFactory('alice', 1), userFactory('bob', 3)]) },
      { status: 201 },
      { status: 201 },
    ]);

    // Act
    await client.grant(repo, [userFactory('alice', 3), userFactory('bob', 3), userFactory('carol', 7)]);

    // Assess
    expect(seen.map((s) => [s.method, s.body])).toEqual([
      ['POST', [userFactory('alice', 3), userFactory('bob', 3), userFactory('carol', 7)]],
      ['GET', undefined],
      ['PATCH', [userFactory('alice', 3)]],
      ['POST', [userFactory('carol', 7)]],
    ]);
  });

  it.each([
    {
      name: 'POST exists again',
      second: { status: 409, body: swrError('SVCSTG.SWR.4090089', 'exists') },
      code: 'SVCSTG.SWR.4090089',
    },
    {
      name: 'PATCH finds the permission gone',
      second: { status: 404, body: swrError('SVCSTG.SWR.4040091', 'gone') },
      code: 'SVCSTG.SWR.4040091',
    },
  ])(
    'a conflict again after re-reading ($name) is retryable: another writer moved it',
    async ({ second, code }) => {
      // Prepare: alice holds read when re-read; the PATCH (or the POST for carol) then conflicts.
      const { client } = harnessFactory([
        { status: 409, body: swrError('SVCSTG.SWR.4090089', 'permission already exists') },
        { status: 200, body: accessBody(code === 'SVCSTG.SWR.4040091' ? [userFactory('alice', 1)] : []) },
        second,
      ]);

      // Act
      const error = await caught(client.grant(repo, [userFactory('alice', 3)]));

      // Assess
      expect(error).toMatchObject({ code, retryable: true, target: 'core/team/api' });
    },
  );

  it('on namespace 409 4090076 with everyone present: only PATCH', async () => {
    // Prepare
    const { client, calls } = harnessFactory([
      { status: 409, body: { error_code: 'SVCSTG.SWR.4090076', error_msg: 'exists' } },
      { status: 200, body: accessBody([userFactory('alice', 1)]) },
      { status: 201 },
    ]);

    // Act
    await client.grant(ns, [userFactory('alice', 7)]);

    // Assess
    expect(calls()).toEqual([`POST ${nsPath}`, `GET ${nsPath}`, `PATCH ${nsPath}`]);
  });

  it('retries 409 "system busy" with back-off and reports the retry', async () => {
    // Prepare
    const { client, seen, sleeps, retries } = harnessFactory([
      { status: 409, body: swrError('SVCSTG.SWR.4090023', 'system busy') },
      { status: 201 },
    ]);

    // Act
    await client.grant(repo, [userFactory('alice')]);

    // Assess
    expect(seen.map((s) => s.method)).toEqual(['POST', 'POST']);
    expect(sleeps).toEqual([50]);
    expect(retries.map((r) => [r.attempt, r.code, r.target])).toEqual([
      [1, 'SVCSTG.SWR.4090023', 'core/team/api'],
    ]);
  });

  it('fails permanently on 404 "repository not found"', async () => {
    // Prepare
    const { client, seen } = harnessFactory([
      { status: 404, body: swrError('SVCSTG.SWR.4040010', 'not found') },
    ]);

    // Act
    const error = await caught(client.grant(repo, [userFactory('alice')]));

    // Assess
    expect(error).toMatchObject({ code: 'SVCSTG.SWR.4040010', retryable: false, status: 404, attempts: 1 });
    expect(seen).toHaveLength(1);
  });
});

describe('change', () => {
  it('PATCHes the array', async () => {
    // Prepare
    const { client, seen } = harnessFactory([{ status: 201 }]);

    // Act
    await client.change(repo, [userFactory('alice', 7)]);

    // Assess
    expect(seen.map((s) => [s.method, s.path, s.body])).toEqual([
      ['PATCH', repoPath, [userFactory('alice', 7)]],
    ]);
  });

  it('on 404 "permission missing": POSTs who holds nothing, PATCHes the rest', async () => {
    // Prepare
    const { client, seen } = harnessFactory([
      { status: 404, body: swrError('SVCSTG.SWR.4040091', 'permission not found') },
      { status: 200, body: accessBody([userFactory('alice', 1)]) },
      { status: 201 },
      { status: 201 },
    ]);

    // Act
    await client.change(repo, [userFactory('alice', 3), userFactory('bob', 3)]);

    // Assess
    expect(seen.map((s) => [s.method, s.body])).toEqual([
      ['PATCH', [userFactory('alice', 3), userFactory('bob', 3)]],
      ['GET', undefined],
      ['POST', [userFactory('bob', 3)]],
      ['PATCH', [userFactory('alice', 3)]],
    ]);
  });
});

describe('revoke', () => {
  it('DELETEs with the array of user ids (duplicates once)', async () => {
    // Prepare
    const { client, seen } = harnessFactory([{ status: 204 }]);

    // Act
    await client.revoke(repo, [ids.alice, ids.bob, ids.alice]);

    // Assess
    expect(seen.map((s) => [s.method, s.path, s.body])).toEqual([['DELETE', repoPath, [ids.alice, ids.bob]]]);
  });

  it.each([
    ['repository', repo, 'SVCSTG.SWR.4040091'],
    ['namespace', ns, 'SVCSTG.SWR.4040078'],
  ])('404 "permission missing" on a %s for one user = already revoked', async (_kind, target, code) => {
    // Prepare
    const { client, seen } = harnessFactory([{ status: 404, body: swrError(code) }]);

    // Act
    await client.revoke(target, [ids.alice]);

    // Assess
    expect(seen).toHaveLength(1);
  });

  it('404 "permission missing" for several users: re-reads and DELETEs who is still there, once', async () => {
    // Prepare
    const { client, seen } = harnessFactory([
      { status: 404, body: swrError('SVCSTG.SWR.4040091') },
      { status: 200, body: accessBody([userFactory('bob', 3), userFactory('carol', 1)]) },
      { status: 404, body: swrError('SVCSTG.SWR.4040091') },
    ]);

    // Act
    await client.revoke(repo, [ids.alice, ids.bob]);

    // Assess
    expect(seen.map((s) => [s.method, s.body])).toEqual([
      ['DELETE', [ids.alice, ids.bob]],
      ['GET', undefined],
      ['DELETE', [ids.bob]],
    ]);
  });

  it('sends no second DELETE when nobody is left', async () => {
    // Prepare
    const { client, calls } = harnessFactory([
      { status: 404, body: swrError('SVCSTG.SWR.4040091') },
      { status: 200, body: accessBody([userFactory('carol', 1)]) },
    ]);

    // Act
    await client.revoke(repo, [ids.alice, ids.bob]);

    // Assess
    expect(calls()).toEqual([`DELETE ${repoPath}`, `GET ${repoPath}`]);
  });

  it.each(['SVCSTG.SWR.4040010', 'SVCSTG.SWR.4040113', 'SVCSTG.SWR.4040058', 'SVCSTG.SWR.4041061'])(
    '404 %s (repository or organization missing) is permanent, not "done"',
    async (code) => {
      // Prepare
      const { client } = harnessFactory([{ status: 404, body: swrError(code) }]);

      // Act
      const error = await caught(client.revoke(repo, [ids.alice]));

      // Assess
      expect(error).toBeInstanceOf(SwrApiError);
      expect(error).toMatchObject({ code, retryable: false, target: 'core/team/api', method: 'DELETE' });
    },
  );
});

describe('retries, Retry-After and the deadline', () => {
  it('waits what Retry-After asks on 429 and then succeeds', async () => {
    // Prepare
    const { client, sleeps, requests } = harnessFactory([
      {
        status: 429,
        body: { error_code: 'APIGW.0308', error_msg: 'throttled' },
        headers: { 'retry-after': '2' },
      },
      { status: 204 },
    ]);

    // Act
    await client.revoke(repo, [ids.alice]);

    // Assess
    expect(sleeps).toEqual([2000]);
    expect(requests.map((r) => [r.method, r.path, r.status])).toEqual([
      ['DELETE', repoPath, 429],
      ['DELETE', repoPath, 204],
    ]);
  });

  it('retries 5xx up to maxAttempts and reports the attempts', async () => {
    // Prepare
    const { client, seen, sleeps } = harnessFactory([{ status: 500 }, { status: 502 }, { status: 503 }]);

    // Act
    const error = await caught(client.getAccess(repo));

    // Assess
    expect(error).toMatchObject({ code: 'HTTP_503', retryable: true, attempts: 3 });
    expect(seen).toHaveLength(3);
    expect(sleeps).toEqual([50, 100]);
  });

  it('does not sleep past the deadline: the call stops early with the last error', async () => {
    // Prepare
    const { client, seen, sleeps, clock } = harnessFactory(
      [{ status: 503 }, { status: 429, headers: { 'retry-after': '5' } }, { status: 204 }],
      { maxAttempts: 5 },
    );
    const deadline = clock.now + 3_000;

    // Act
    const error = await caught(client.revoke(repo, [ids.alice], { deadline }));

    // Assess
    expect(error).toMatchObject({ code: 'HTTP_429', retryable: true, attempts: 2 });
    expect(seen).toHaveLength(2);
    expect(sleeps).toEqual([50]);
    expect(clock.now).toBeLessThan(deadline);
  });

  it('starts nothing when the deadline has already passed', async () => {
    // Prepare
    const { client, seen, clock } = harnessFactory([{ status: 204 }]);

    // Act
    const error = await caught(client.revoke(repo, [ids.alice], { deadline: clock.now - 1 }));

    // Assess
    expect(error).toMatchObject({
      name: 'DeadlineExceededError',
      code: ErrorCodes.deadline,
      retryable: true,
    });
    expect(seen).toHaveLength(0);
  });

  it('turns a broken connection into a retryable NetworkError', async () => {
    // Prepare
    const agent = new MockAgent();
    agent.disableNetConnect();
    agents.push(agent);
    agent
      .get(origin)
      .intercept({ path: repoPath, method: 'GET' })
      .replyWithError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }))
      .times(2);
    const client = createSwrClient({
      endpoint: origin,
      auth: createStaticTokenAuth('test-token'),
      dispatcher: agent,
      maxAttempts: 2,
      sleep: async () => {},
    });

    // Act
    const error = await caught(client.getAccess(repo));

    // Assess
    expect(error).toBeInstanceOf(NetworkError);
    expect(error).toMatchObject({
      code: ErrorCodes.network,
      retryable: true,
      attempts: 2,
      target: 'core/team/api',
    });
  });
});

describe('listRepositories', () => {
  it('pages with limit and offset until a short page and returns names with /', async () => {
    // Prepare
    const { client, seen } = harnessFactory(
      [
        { status: 200, body: [{ name: 'team/api', namespace: 'core' }, { name: 'web' }] },
        { status: 200, body: [{ name: 'a/b/c' }, { name: 'd' }] },
        { status: 200, body: [{ name: 'e', category: 'other' }] },
      ],
      { pageSize: 2 },
    );

    // Act
    const names = await client.listRepositories('core');

    // Assess
    expect(names).toEqual(['team/api', 'web', 'a/b/c', 'd', 'e']);
    expect(seen.map((s) => s.path)).toEqual([
      '/v2/manage/repos?namespace=core&limit=2&offset=0',
      '/v2/manage/repos?namespace=core&limit=2&offset=2',
      '/v2/manage/repos?namespace=core&limit=2&offset=4',
    ]);
  });

  it('stops on an empty page', async () => {
    // Prepare
    const { client, seen } = harnessFactory([{ status: 200, body: [] }]);

    // Act
    const names = await client.listRepositories('core');

    // Assess
    expect(names).toEqual([]);
    expect(seen).toHaveLength(1);
  });

  it('refuses a server that ignores the offset instead of looping forever', async () => {
    // Prepare
    const page = [{ name: 'a' }, { name: 'b' }];
    const { client, seen } = harnessFactory(
      [
        { status: 200, body: page },
        { status: 200, body: page },
      ],
      { pageSize: 2 },
    );

    // Act
    const error = await caught(client.listRepositories('core'));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_RESPONSE', retryable: false, target: 'core' });
    expect(seen).toHaveLength(2);
  });

  it('validates the namespace', async () => {
    // Prepare
    const { client, seen } = harnessFactory([]);

    // Act
    const error = await caught(client.listRepositories('Core&limit=1'));

    // Assess
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(seen).toHaveLength(0);
  });
});

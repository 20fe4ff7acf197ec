import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidNameError, SyncError } from '../../lib/errors.ts';
import { AmbiguousUserError, GatewayError } from '../../lib/swr/api-errors.ts';
import { createStaticTokenAuth } from '../../lib/swr/auth.ts';
import { createUserDirectory, type UserDirectoryOptions } from '../../lib/swr/iam-users.ts';
import { caught } from '../support/caught.ts';

const origin = 'https://iam.test.example';
const alice = { id: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', name: 'alice' };
const bob = { id: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', name: 'bob' };

/** `text` is sent as is (pages, empty bodies); `body` as JSON. */
type Reply = { status: number; body?: unknown; text?: string };

const agents: MockAgent[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((agent) => agent.close()));
});

/** A directory whose IAM answers from `script` in order; a clock moved by hand. */
const harnessFactory = (script: Reply[], options: Partial<UserDirectoryOptions> = {}) => {
  const agent = new MockAgent();
  agent.disableNetConnect();
  agents.push(agent);
  const paths: string[] = [];
  const clock = { now: 1_000_000 };
  agent
    .get(origin)
    .intercept({ path: () => true, method: 'GET' })
    .reply((opts) => {
      paths.push(opts.path);
      const reply = script[paths.length - 1] ?? { status: 599 };
      return {
        statusCode: reply.status,
        data: reply.text ?? (reply.body === undefined ? '' : JSON.stringify(reply.body)),
      };
    })
    .persist();
  const users = createUserDirectory({
    endpoint: origin,
    auth: createStaticTokenAuth('test-token'),
    dispatcher: agent,
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 },
    clock: { now: () => clock.now, sleep: async () => {}, random: () => 0 },
    ...options,
  });
  return { users, paths, clock };
};

const iamUser = (user: { id: string; name: string }) => ({
  ...user,
  enabled: true,
  domain_id: 'd1',
  extra: {},
});

describe('findById', () => {
  it('reads the user and caches the answer by id, never by name', async () => {
    // Prepare
    const { users, paths } = harnessFactory([
      { status: 200, body: { user: iamUser(alice) } },
      { status: 200, body: { users: [iamUser(alice)] } },
    ]);

    // Act
    const first = await users.findById(alice.id);
    const again = await users.findById(alice.id);
    const byName = await users.findByName('alice');

    // Assess: a name is an identity only after IAM listed its users (another may share it).
    expect([first, again, byName]).toEqual([alice, alice, alice]);
    expect(paths).toEqual([`/v3/users/${alice.id}`, '/v3/users?name=alice']);
  });

  it.each([
    [
      'the documented Huawei form',
      { error_msg: `Could not find user: ${alice.id}.`, error_code: 'IAM.0004' },
    ],
    ['the same with the code in another case', { error_msg: 'Could not find user.', error_code: 'Iam.0004' }],
    [
      'the Keystone form',
      { error: { code: 404, title: 'Not Found', message: `Could not find user: ${alice.id}.` } },
    ],
  ])('answers undefined on a 404 in %s and remembers it only briefly', async (_form, body) => {
    // Prepare
    const { users, paths, clock } = harnessFactory(
      [
        { status: 404, body },
        { status: 200, body: { user: iamUser(alice) } },
      ],
      { cache: { negativeTtlMs: 60_000, ttlMs: 600_000 } },
    );

    // Act
    const missing = await users.findById(alice.id);
    const stillMissing = await users.findById(alice.id);
    clock.now += 60_001;
    const created = await users.findById(alice.id);

    // Assess
    expect([missing, stillMissing, created]).toEqual([undefined, undefined, alice]);
    expect(paths).toHaveLength(2);
  });

  it.each([
    [
      'the gateway (API not published)',
      {
        status: 404,
        body: { error_code: 'APIGW.0101', error_msg: 'The API does not exist or has not been published' },
      },
      'APIGW.0101',
      /gateway error, not IAM itself \(check IAM_ENDPOINT\)/,
    ],
    [
      'an HTML page',
      { status: 404, text: '<html><body>404 Not Found</body></html>' },
      'GATEWAY_ERROR',
      /check IAM_ENDPOINT/,
    ],
    ['an empty body', { status: 404, text: '' }, 'GATEWAY_ERROR', /check IAM_ENDPOINT/],
    [
      'another JSON',
      { status: 404, body: { error_code: 'IAM.0099', error_msg: 'Could not find domain' } },
      'IAM.0099',
      /without saying the user does not exist/,
    ],
    [
      'a Keystone body of another title',
      { status: 404, body: { error: { code: 404, title: 'Other' } } },
      'HTTP_404',
      /without saying/,
    ],
  ])(
    'never reads a 404 from %s as "no such user": a retryable error',
    async (_case, reply, code, message) => {
      // Prepare
      const { users, paths } = harnessFactory([reply, reply]);

      // Act
      const error = await caught(users.findById(alice.id));

      // Assess
      expect(error).toBeInstanceOf(SyncError);
      expect(error).toMatchObject({ code, retryable: true, attempts: 2 });
      expect((error as Error).message).toMatch(message);
      expect(paths).toHaveLength(2);
    },
  );

  it('treats an answer about another user as unreadable', async () => {
    // Prepare
    const { users } = harnessFactory([
      { status: 200, body: { user: iamUser(bob) } },
      { status: 200, body: { user: iamUser(bob) } },
    ]);

    // Act
    const error = await caught(users.findById(alice.id));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_RESPONSE', retryable: true });
  });

  it('throws, never answers undefined, when IAM cannot be read', async () => {
    // Prepare
    const { users, paths } = harnessFactory([{ status: 503 }, { status: 500 }]);

    // Act
    const error = await caught(users.findById(alice.id));

    // Assess
    expect(error).toBeInstanceOf(SyncError);
    expect(error).toMatchObject({ retryable: true, code: 'HTTP_500', attempts: 2 });
    expect(paths).toHaveLength(2);
  });

  it('validates the id before building the URL', async () => {
    // Prepare
    const { users, paths } = harnessFactory([]);

    // Act
    const error = await caught(users.findById('../../v3/auth/tokens'));

    // Assess
    expect(error).toBeInstanceOf(InvalidNameError);
    expect(paths).toHaveLength(0);
  });

  it('expires positive entries after the TTL', async () => {
    // Prepare
    const { users, paths, clock } = harnessFactory(
      [
        { status: 200, body: { user: iamUser(alice) } },
        { status: 200, body: { user: iamUser({ ...alice, name: 'alice2' }) } },
      ],
      { cache: { ttlMs: 600_000 } },
    );

    // Act
    await users.findById(alice.id);
    clock.now += 600_001;
    const renamed = await users.findById(alice.id);

    // Assess
    expect(renamed).toEqual({ id: alice.id, name: 'alice2' });
    expect(paths).toHaveLength(2);
  });

  it('keeps at most maxEntries, evicting the least recently used', async () => {
    // Prepare
    const { users, paths } = harnessFactory(
      [
        { status: 200, body: { user: iamUser(alice) } },
        { status: 200, body: { user: iamUser(bob) } },
        { status: 200, body: { user: iamUser(alice) } },
      ],
      { cache: { maxEntries: 1 } },
    );

    // Act: each found user takes one entry (its id), so bob evicts alice.
    await users.findById(alice.id);
    await users.findById(bob.id);
    await users.findById(alice.id);

    // Assess
    expect(paths).toEqual([`/v3/users/${alice.id}`, `/v3/users/${bob.id}`, `/v3/users/${alice.id}`]);
  });
});

describe('findByName', () => {
  it('queries by name and picks the exact match', async () => {
    // Prepare
    const { users, paths } = harnessFactory([
      { status: 200, body: { users: [iamUser({ id: bob.id, name: 'alice-ops' }), iamUser(alice)] } },
    ]);

    // Act
    const found = await users.findByName('alice');

    // Assess
    expect(found).toEqual(alice);
    expect(paths).toEqual(['/v3/users?name=alice']);
  });

  it('encodes the name in the query as the signing SDKs do: a space is %20, a plus %2B', async () => {
    // Prepare
    const { users, paths } = harnessFactory([{ status: 200, body: { users: [] } }]);

    // Act
    const found = await users.findByName('a&b=c d+e');

    // Assess
    expect(found).toBeUndefined();
    expect(paths).toEqual(['/v3/users?name=a%26b%3Dc%20d%2Be']);
  });

  it.each([
    [2, [iamUser(alice), iamUser({ id: bob.id, name: 'alice' })]],
    [
      3,
      [
        iamUser(alice),
        iamUser({ id: bob.id, name: 'alice' }),
        iamUser({ id: 'c'.repeat(32), name: 'alice' }),
      ],
    ],
  ])(
    'refuses a name that %i IAM users share (AmbiguousUserError) and never caches it',
    async (count, listed) => {
      // Prepare
      const { users, paths } = harnessFactory([
        { status: 200, body: { users: listed } },
        { status: 200, body: { users: listed } },
      ]);

      // Act
      const first = await caught(users.findByName('alice'));
      const second = await caught(users.findByName('alice'));

      // Assess
      expect(first).toBeInstanceOf(AmbiguousUserError);
      expect(first).toMatchObject({ code: 'AMBIGUOUS_USER', retryable: false, matches: count });
      expect((first as Error).message).toContain(`${count} users named "alice"`);
      expect(second).toBeInstanceOf(AmbiguousUserError);
      expect(paths).toHaveLength(2);
    },
  );

  it('counts only exact, case-sensitive matches', async () => {
    // Prepare
    const { users } = harnessFactory([
      {
        status: 200,
        body: {
          users: [
            iamUser({ id: bob.id, name: 'Alice' }),
            iamUser(alice),
            iamUser({ id: 'c'.repeat(32), name: 'alice ' }),
          ],
        },
      },
    ]);

    // Act
    const found = await users.findByName('alice');

    // Assess
    expect(found).toEqual(alice);
  });

  it('answers undefined when IAM lists no user of that exact name', async () => {
    // Prepare
    const { users } = harnessFactory([
      { status: 200, body: { users: [iamUser({ id: bob.id, name: 'ALICE' })] } },
    ]);

    // Act & Assess
    expect(await users.findByName('alice')).toBeUndefined();
  });

  it('reads a gateway 404 on the listing as a retryable gateway error', async () => {
    // Prepare
    const reply = { status: 404, body: { error_code: 'APIGW.0101', error_msg: 'not published' } };
    const { users } = harnessFactory([reply, reply]);

    // Act
    const error = await caught(users.findByName('alice'));

    // Assess
    expect(error).toBeInstanceOf(GatewayError);
    expect(error).toMatchObject({ retryable: true, code: 'APIGW.0101' });
  });

  it('treats a malformed list as unreadable, not as "no such user"', async () => {
    // Prepare
    const { users } = harnessFactory([
      { status: 200, body: { user: 'x' } },
      { status: 200, body: { user: 'x' } },
    ]);

    // Act
    const error = await caught(users.findByName('alice'));

    // Assess
    expect(error).toMatchObject({ code: 'INVALID_RESPONSE', retryable: true });
  });
});

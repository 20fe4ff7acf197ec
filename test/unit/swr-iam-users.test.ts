import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidNameError, SyncError } from '../../lib/errors.ts';
import { createStaticTokenAuth } from '../../lib/swr/auth.ts';
import { createUserDirectory, type UserDirectoryOptions } from '../../lib/swr/iam-users.ts';

const origin = 'https://iam.test.example';
const alice = { id: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', name: 'alice' };
const bob = { id: 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', name: 'bob' };

type Reply = { status: number; body?: unknown };

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
      return { statusCode: reply.status, data: reply.body === undefined ? '' : JSON.stringify(reply.body) };
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

const caught = async (promise: Promise<unknown>): Promise<unknown> => {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
};

describe('findById', () => {
  it('reads the user and caches the answer for both keys', async () => {
    // Prepare
    const { users, paths } = harnessFactory([{ status: 200, body: { user: iamUser(alice) } }]);

    // Act
    const first = await users.findById(alice.id);
    const again = await users.findById(alice.id);
    const byName = await users.findByName('alice');

    // Assess
    expect([first, again, byName]).toEqual([alice, alice, alice]);
    expect(paths).toEqual([`/v3/users/${alice.id}`]);
  });

  it('answers undefined on 404 and remembers it only briefly', async () => {
    // Prepare
    const { users, paths, clock } = harnessFactory(
      [
        { status: 404, body: { error: { code: 404, message: 'Could not find user' } } },
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
      { cache: { maxEntries: 2 } },
    );

    // Act: each found user takes two entries (id and name), so bob evicts alice.
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

  it('encodes the name in the query', async () => {
    // Prepare
    const { users, paths } = harnessFactory([{ status: 200, body: { users: [] } }]);

    // Act
    const found = await users.findByName('a&b=c d');

    // Assess
    expect(found).toBeUndefined();
    expect(paths).toEqual(['/v3/users?name=a%26b%3Dc+d']);
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

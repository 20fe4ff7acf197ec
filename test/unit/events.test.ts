import { describe, expect, it } from 'vitest';
import { parseEventBody, resolveEventUser } from '../../lib/core/events.ts';
import type { IamUser, PeopleEvent, UserDirectoryPort } from '../../lib/domain.ts';
import { ErrorCodes, EventParseError, SyncError, UnknownUserError } from '../../lib/errors.ts';

const now = new Date('2026-11-20T12:00:00Z');
const userId = 'fb3f175c1fd146ab8cdae3272be6107b';

/** The example body of the task, with fields replaced or (value `undefined`) removed. */
const eventFactory = (overrides: Record<string, unknown> = {}): Record<string, unknown> => {
  const event: Record<string, unknown> = {
    id: 'hr-2026-000123',
    type: 'membership.added',
    occurredAt: '2026-11-20T10:00:00Z',
    source: 'workday',
    user: { id: userId, name: 'user01' },
    team: 'platform',
    ...overrides,
  };
  for (const [key, value] of Object.entries(event)) if (value === undefined) delete event[key];
  return event;
};

const body = (overrides: Record<string, unknown> = {}): string => JSON.stringify(eventFactory(overrides));

describe('parseEventBody: valid bodies', () => {
  it.each([
    ['membership.added', body(), { type: 'membership.added', team: 'platform' }],
    ['membership.removed', body({ type: 'membership.removed' }), { type: 'membership.removed' }],
    ['user.offboarded', body({ type: 'user.offboarded', team: undefined }), { type: 'user.offboarded' }],
    [
      'user.teams, deduplicated',
      body({ type: 'user.teams', team: undefined, teams: ['platform', 'sre', 'platform'] }),
      { teams: ['platform', 'sre'] },
    ],
    ['user.teams, empty = no team', body({ type: 'user.teams', team: undefined, teams: [] }), { teams: [] }],
    [
      'offset zone',
      body({ occurredAt: '2026-11-20T11:00:00.123+01:00' }),
      { occurredAt: '2026-11-20T11:00:00.123+01:00' },
    ],
    ['id only', body({ user: { id: userId } }), { user: { id: userId } }],
    ['name only', body({ user: { name: 'Jane Doe-1.x_y' } }), { user: { name: 'Jane Doe-1.x_y' } }],
    ['no source', body({ source: undefined }), { id: 'hr-2026-000123' }],
    [
      'effectiveAt and expiresAt kept',
      body({ effectiveAt: '2026-11-21T00:00:00Z', expiresAt: '2026-12-31T23:59:59+08:00' }),
      { effectiveAt: '2026-11-21T00:00:00Z', expiresAt: '2026-12-31T23:59:59+08:00' },
    ],
    [
      'effectiveAt on offboarding',
      body({ type: 'user.offboarded', team: undefined, effectiveAt: '2026-11-30T18:00:00Z' }),
      { effectiveAt: '2026-11-30T18:00:00Z' },
    ],
    [
      'team with every allowed character',
      body({ team: 'Eng/Core: api_v2.x-1 ü' }),
      { team: 'Eng/Core: api_v2.x-1 ü' },
    ],
    [
      '23 h in the future (clock skew)',
      body({ occurredAt: '2026-11-21T11:00:00Z' }),
      { occurredAt: '2026-11-21T11:00:00Z' },
    ],
  ])('%s', (_name, input, expected) => {
    // Act
    const result = parseEventBody(input, now);

    // Assess
    expect(result).toMatchObject({ ok: true, event: expected });
  });
});

describe('parseEventBody: invalid bodies', () => {
  it.each([
    ['empty body', '', ErrorCodes.invalidJson, 'empty'],
    ['blank body', '  \n ', ErrorCodes.invalidJson, 'empty'],
    ['not JSON', '{"id": "x", ', ErrorCodes.invalidJson, 'not valid JSON'],
    ['too large', JSON.stringify({ pad: 'x'.repeat(300_000) }), ErrorCodes.schema, 'at most 262144'],
    ['a JSON array', '[]', ErrorCodes.schema, 'expected object'],
    ['unknown type', body({ type: 'membership.changed' }), ErrorCodes.schema, 'type must be one of'],
    ['missing type', body({ type: undefined }), ErrorCodes.schema, 'type must be one of'],
    ['unknown field', body({ colour: 'red' }), ErrorCodes.schema, 'Unrecognized key: "colour"'],
    [
      'expiresAt on a removal',
      body({ type: 'membership.removed', expiresAt: '2026-12-01T00:00:00Z' }),
      ErrorCodes.schema,
      'expiresAt',
    ],
    ['teams on membership.added', body({ teams: ['a'] }), ErrorCodes.schema, 'Unrecognized key: "teams"'],
    ['team on offboarding', body({ type: 'user.offboarded' }), ErrorCodes.schema, 'Unrecognized key: "team"'],
    ['missing team', body({ team: undefined }), ErrorCodes.schema, 'team'],
    ['user.teams without teams', body({ type: 'user.teams', team: undefined }), ErrorCodes.schema, 'teams'],
    [
      'user without id or name',
      body({ user: {} }),
      ErrorCodes.schema,
      'IAM user id, the IAM user name, or both',
    ],
    [
      'user with unknown field',
      body({ user: { id: userId, email: 'a@b.c' } }),
      ErrorCodes.schema,
      'Unrecognized key: "email"',
    ],
    [
      'uppercase user id',
      body({ user: { id: userId.toUpperCase() } }),
      ErrorCodes.schema,
      '32 lowercase hexadecimal',
    ],
    ['short user id', body({ user: { id: 'abc' } }), ErrorCodes.schema, '32 lowercase hexadecimal'],
    ['user name with a slash', body({ user: { name: 'a/b' } }), ErrorCodes.schema, 'IAM user name'],
    [
      'user name starting with a digit',
      body({ user: { name: '1abc' } }),
      ErrorCodes.schema,
      'not starting with a digit',
    ],
    ['user name too long', body({ user: { name: 'a'.repeat(65) } }), ErrorCodes.schema, '1 to 64'],
    [
      'occurredAt without zone',
      body({ occurredAt: '2026-11-20T10:00:00' }),
      ErrorCodes.schema,
      'with a zone',
    ],
    ['occurredAt a date only', body({ occurredAt: '2026-11-20' }), ErrorCodes.schema, 'with a zone'],
    [
      'occurredAt far in the future',
      body({ occurredAt: '2026-11-21T12:00:01Z' }),
      ErrorCodes.schema,
      "producer's clock",
    ],
    [
      'effectiveAt without zone',
      body({ effectiveAt: '2026-11-20T10:00:00' }),
      ErrorCodes.schema,
      'effectiveAt',
    ],
    ['empty id', body({ id: '' }), ErrorCodes.schema, '1 to 128'],
    ['id too long', body({ id: 'x'.repeat(129) }), ErrorCodes.schema, '1 to 128'],
    ['id with a control character', body({ id: 'a\nb' }), ErrorCodes.schema, 'control characters'],
    ['source too long', body({ source: 's'.repeat(129) }), ErrorCodes.schema, 'at most 128'],
    [
      'team starting with a symbol',
      body({ team: '-platform' }),
      ErrorCodes.schema,
      'must start with a letter or digit',
    ],
    [
      'team with a forbidden character',
      body({ team: 'plat$form' }),
      ErrorCodes.schema,
      'must start with a letter or digit',
    ],
    ['team too long', body({ team: 't'.repeat(129) }), ErrorCodes.schema, '1 to 128'],
    [
      'team in a snapshot invalid',
      body({ type: 'user.teams', team: undefined, teams: ['ok', '#bad'] }),
      ErrorCodes.schema,
      'teams[1]',
    ],
  ])('%s → %s', (_name, input, code, reason) => {
    // Act
    const result = parseEventBody(input, now);

    // Assess
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toBeInstanceOf(EventParseError);
    expect(result.error.code).toBe(code);
    expect(result.error.retryable).toBe(false);
    expect(result.error.message).toContain(reason);
  });

  it('lists every problem of a body, not only the first', () => {
    // Act
    const result = parseEventBody(body({ team: '', user: { id: 'nope' }, occurredAt: 'yesterday' }), now);

    // Assess
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.message).toMatch(/team[\s\S]*user\.id|user\.id[\s\S]*team/);
    expect(result.error.message).toContain('occurredAt');
  });

  it.each([
    ['an unknown field', body({ password: 'hunter2-secret-value' })],
    ['broken JSON', '{"token": "hunter2-secret-value", '],
    ['a wrong field type', body({ source: { secret: 'hunter2-secret-value' } })],
  ])('never echoes the body (%s)', (_name, input) => {
    // Act
    const result = parseEventBody(input, now);

    // Assess
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.message).not.toContain('hunter2-secret-value');
  });

  it('keeps the reason short for a body with many problems', () => {
    // Prepare
    const teams = Array.from({ length: 500 }, (_, i) => `#bad-${i}`);

    // Act
    const result = parseEventBody(body({ type: 'user.teams', team: undefined, teams }), now);

    // Assess
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.message.length).toBeLessThanOrEqual(1000);
  });
});

describe('resolveEventUser', () => {
  const known: IamUser = { id: userId, name: 'user01' };

  const directoryFactory = (users: IamUser[] = [known], failWith?: Error) => {
    const calls: string[] = [];
    const directory: UserDirectoryPort = {
      async findById(id) {
        calls.push(`id:${id}`);
        if (failWith !== undefined) throw failWith;
        return users.find((user) => user.id === id);
      },
      async findByName(name) {
        calls.push(`name:${name}`);
        if (failWith !== undefined) throw failWith;
        return users.find((user) => user.name === name);
      },
    };
    return { directory, calls };
  };

  const parsed = (user: PeopleEvent['user'], overrides: Record<string, unknown> = {}): PeopleEvent => {
    const result = parseEventBody(body({ user, ...overrides }), now);
    if (!result.ok) throw result.error;
    return result.event;
  };
  const offboarding = { type: 'user.offboarded', team: undefined };
  const removal = { type: 'membership.removed' };

  it.each([
    ['id only → name from IAM', { id: userId }, [`id:${userId}`]],
    ['name only → id from IAM', { name: 'user01' }, ['name:user01']],
    ['both → the id confirmed in IAM', { id: userId, name: 'user01' }, [`id:${userId}`]],
  ])('a join: %s', async (_name, user, expectedCalls) => {
    // Prepare
    const { directory, calls } = directoryFactory();

    // Act
    const { event: resolved } = await resolveEventUser(parsed(user), { directory });

    // Assess
    expect(resolved.user).toEqual(known);
    expect(resolved).toMatchObject({ id: 'hr-2026-000123', type: 'membership.added', team: 'platform' });
    expect(calls).toEqual(expectedCalls);
  });

  it("a join for a user IAM renamed takes IAM's current name, and says so", async () => {
    // Prepare
    const { directory } = directoryFactory([{ id: userId, name: 'user01-renamed' }]);

    // Act
    const resolution = await resolveEventUser(parsed({ id: userId, name: 'user01' }), { directory });

    // Assess
    expect(resolution.event.user).toEqual({ id: userId, name: 'user01-renamed' });
    expect(resolution.renamedFrom).toBe('user01');
  });

  it.each([
    ['an id', { id: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' }, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'],
    ['a name', { name: 'ghost' }, '"ghost"'],
    [
      'an id with a name',
      { id: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', name: 'ghost' },
      'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    ],
  ])(
    'a join for a user IAM does not know by %s is a permanent UnknownUserError',
    async (_name, user, who) => {
      // Prepare
      const { directory } = directoryFactory();

      // Act
      const resolving = resolveEventUser(parsed(user), { directory });

      // Assess
      await expect(resolving).rejects.toBeInstanceOf(UnknownUserError);
      await expect(resolving).rejects.toMatchObject({ code: ErrorCodes.unknownUser, retryable: false });
      await expect(resolving).rejects.toThrow(who);
    },
  );

  it('a join lets an IAM read failure through unchanged (retryable)', async () => {
    // Prepare
    const failure = new SyncError('IAM down', { code: ErrorCodes.network, retryable: true });
    const { directory } = directoryFactory([], failure);

    // Act
    const resolving = resolveEventUser(parsed({ id: userId }), { directory });

    // Assess
    await expect(resolving).rejects.toBe(failure);
  });

  it.each([
    ['IAM already deleted the user', [] as IamUser[], undefined],
    ['IAM is down', [known], new SyncError('IAM down', { code: ErrorCodes.network, retryable: true })],
    [
      'IAM answers a gateway error',
      [known],
      new SyncError('gateway 404', { code: 'APIGW.0101', retryable: true }),
    ],
  ])('an id-only offboarding never asks IAM (%s)', async (_name, users, failure) => {
    // Prepare
    const { directory, calls } = directoryFactory(users, failure);

    // Act
    const { event: resolved } = await resolveEventUser(parsed({ id: userId }, offboarding), { directory });

    // Assess: revoking needs only the id; an empty name keeps the one the store has.
    expect(resolved.user).toEqual({ id: userId, name: '' });
    expect(calls).toEqual([]);
  });

  it.each([
    ['IAM already deleted the user', [] as IamUser[], undefined, ''],
    ['IAM is down', [known], new SyncError('IAM down', { code: ErrorCodes.network, retryable: true }), ''],
    ['IAM knows the user', [known], undefined, 'user01'],
  ])(
    "an id-only removal takes IAM's name when it can, and goes on without it (%s)",
    async (_name, users, failure, name) => {
      // Prepare
      const { directory } = directoryFactory(users, failure);

      // Act
      const { event: resolved } = await resolveEventUser(parsed({ id: userId }, removal), { directory });

      // Assess
      expect(resolved.user).toEqual({ id: userId, name });
    },
  );

  it.each([['one recorded user', [userId], { id: userId, name: 'gone' }]])(
    "a name-only offboarding of a user IAM deleted finds %s in the service's records",
    async (_name, known, user) => {
      // Prepare
      const { directory } = directoryFactory([]);
      const knownIdsByName = async (name: string) => (name === 'gone' ? known : []);

      // Act
      const { event: resolved } = await resolveEventUser(parsed({ name: 'gone' }, offboarding), {
        directory,
        knownIdsByName,
      });

      // Assess
      expect(resolved.user).toEqual(user);
    },
  );

  it.each([
    ['nobody', [] as string[], ErrorCodes.unknownUser],
    ['two users', [userId, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'], 'AMBIGUOUS_USER'],
  ])(
    'a name-only offboarding that IAM and the records know as %s fails for good',
    async (_name, known, code) => {
      // Prepare
      const { directory } = directoryFactory([]);

      // Act
      const resolving = resolveEventUser(parsed({ name: 'gone' }, offboarding), {
        directory,
        knownIdsByName: async () => known,
      });

      // Assess
      await expect(resolving).rejects.toMatchObject({ code, retryable: false });
    },
  );
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { IamUser, IdentityMapping, UserDirectoryPort } from '../../lib/domain.ts';
import { InvalidNameError, SyncError } from '../../lib/errors.ts';
import { attributeAt, mappedIamName, resolveIamUser } from '../../lib/intake/identity.ts';

const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/intake', name), 'utf8')) as Record<
    string,
    unknown
  >;

const entraUser = fixture('entra-create-user.json');
const oktaUser = fixture('okta-scim-create-user.json');

const identity = (
  source: IdentityMapping['source'],
  extra: Partial<IdentityMapping> = {},
): IdentityMapping => ({
  source,
  lowercase: false,
  ...extra,
});

/** A directory over a fixed list: an exact-name lookup, as IAM does. */
const directoryOf = (users: IamUser[], failure?: Error): UserDirectoryPort => ({
  findById: async (id) => users.find((user) => user.id === id),
  findByName: async (name) => {
    if (failure !== undefined) throw failure;
    return users.find((user) => user.name === name);
  },
});

describe('mappedIamName on real provider samples', () => {
  it.each([
    ['userName', entraUser, identity('userName'), 'Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee'],
    [
      'userName lowercased',
      entraUser,
      identity('userName', { lowercase: true }),
      'test_user_00aa00aa-bb11-cc22-dd33-44ee44ee44ee',
    ],
    ['email', oktaUser, identity('email'), 'test.user@okta.local'],
    ['email local part', oktaUser, identity('emailLocalPart'), 'test.user'],
    [
      'email local part, lowercased',
      entraUser,
      identity('emailLocalPart', { lowercase: true }),
      'test_user_11bb11bb-cc22-dd33-ee44-55ff55ff55ff',
    ],
    [
      'externalId (Entra objectId)',
      entraUser,
      identity('externalId'),
      '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef',
    ],
    ['externalId (Okta user id)', oktaUser, identity('externalId'), '00ujl29u0le5T6Aj10h7'],
    [
      'attribute name.givenName',
      entraUser,
      identity('attribute', { attribute: 'name.givenName' }),
      'givenName',
    ],
    [
      'attribute, case-insensitive path',
      oktaUser,
      identity('attribute', { attribute: 'DisplayName' }),
      'Test User',
    ],
  ])('%s', (_name, user, mapping, expected) => {
    // Act
    const mapped = mappedIamName(mapping, user);

    // Assess
    expect(mapped).toEqual({ ok: true, name: expected });
  });

  it.each([
    ['no e-mails', { userName: 'a' }, identity('email'), 'the user has no email'],
    [
      'an e-mail without @',
      { emails: [{ value: 'ann' }] },
      identity('emailLocalPart'),
      'the user has no emailLocalPart',
    ],
    ['no externalId', { userName: 'a' }, identity('externalId'), 'the user has no externalId'],
    ['a blank userName', { userName: '  ' }, identity('userName'), 'the user has no userName'],
    [
      'a missing attribute',
      entraUser,
      identity('attribute', { attribute: 'nickName' }),
      'the user has no attribute nickName',
    ],
    [
      'an object, not a value',
      entraUser,
      identity('attribute', { attribute: 'name' }),
      'the user has no attribute name',
    ],
  ])('reports %s as unmapped', (_name, user, mapping, reason) => {
    // Act
    const mapped = mappedIamName(mapping, user as Record<string, unknown>);

    // Assess
    expect(mapped).toEqual({ ok: false, reason: expect.stringContaining(reason) });
  });

  it('prefers the primary e-mail, then the work one, then the first', () => {
    // Prepare
    const emails = [
      { value: 'home@example.com', type: 'home' },
      { value: 'work@example.com', type: 'work' },
      { value: 'main@example.com', type: 'other', primary: true },
    ];

    // Act
    const primary = mappedIamName(identity('email'), { emails });
    const work = mappedIamName(identity('email'), { emails: emails.slice(0, 2) });
    const first = mappedIamName(identity('email'), { emails: emails.slice(0, 1) });

    // Assess
    expect([primary, work, first]).toEqual([
      { ok: true, name: 'main@example.com' },
      { ok: true, name: 'work@example.com' },
      { ok: true, name: 'home@example.com' },
    ]);
  });

  it('reads an enterprise extension attribute by its schema URN', () => {
    // Prepare
    const user = {
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User': { employeeNumber: 4711 },
    };

    // Act
    const value = attributeAt(
      user,
      'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber',
    );

    // Assess
    expect(value).toBe(4711);
    expect(
      mappedIamName(
        identity('attribute', {
          attribute: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber',
        }),
        user,
      ),
    ).toEqual({ ok: true, name: '4711' });
  });
});

describe('resolveIamUser', () => {
  const ann = { id: 'a11ce000000000000000000000000001', name: 'test.user' };

  it('resolves the mapped name by exact IAM name', async () => {
    // Act
    const resolution = await resolveIamUser(identity('emailLocalPart'), oktaUser, directoryOf([ann]));

    // Assess
    expect(resolution).toEqual({ kind: 'resolved', user: ann });
  });

  it('is unmapped when IAM knows no such user (no near match)', async () => {
    // Act
    const resolution = await resolveIamUser(
      identity('emailLocalPart'),
      oktaUser,
      directoryOf([{ ...ann, name: 'Test.User' }]),
    );

    // Assess
    expect(resolution).toEqual({
      kind: 'unmapped',
      name: 'test.user',
      reason: 'IAM knows no user named "test.user"',
    });
  });

  it.each([
    ['an invalid IAM name', new InvalidNameError('user name', 'must not contain @')],
    [
      'two IAM users of that name',
      Object.assign(
        new SyncError('two IAM users are named test.user', { code: 'AMBIGUOUS_USER', retryable: false }),
        {
          name: 'AmbiguousUserError',
        },
      ),
    ],
  ])('treats %s (a permanent error) as unmapped', async (_name, failure) => {
    // Act
    const resolution = await resolveIamUser(identity('email'), oktaUser, directoryOf([ann], failure));

    // Assess
    expect(resolution).toMatchObject({
      kind: 'unmapped',
      name: 'test.user@okta.local',
      reason: failure.message,
    });
  });

  it.each([
    ['a retryable SyncError', new SyncError('IAM answered 503', { code: 'HTTP_ERROR', retryable: true })],
    ['an unknown error', new TypeError('fetch failed')],
  ])('lets %s through: a failed read is not an answer', async (_name, failure) => {
    // Act
    const resolving = resolveIamUser(identity('email'), oktaUser, directoryOf([ann], failure));

    // Assess
    await expect(resolving).rejects.toBe(failure);
  });

  it('does not ask IAM when the user has nothing to map', async () => {
    // Prepare
    let asked = 0;
    const directory: UserDirectoryPort = {
      findById: async () => undefined,
      findByName: async () => {
        asked += 1;
        return undefined;
      },
    };

    // Act
    const resolution = await resolveIamUser(identity('externalId'), { userName: 'x' }, directory);

    // Assess
    expect(resolution.kind).toBe('unmapped');
    expect(asked).toBe(0);
  });
});

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, InvalidNameError } from '../../lib/errors.ts';
import {
  assertAuthLevel,
  assertNamespace,
  assertRepository,
  assertUserId,
  assertUserName,
  encodeRepository,
  namespaceRule,
  repositoryRule,
} from '../../lib/swr/names.ts';

const expectInvalid = (act: () => unknown, field: string): void => {
  let thrown: unknown;
  try {
    act();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(InvalidNameError);
  expect(thrown).toMatchObject({ field, code: ErrorCodes.invalidName, retryable: false });
};

// Generators of names that follow the seed rules, built from the rules rather than a regex.
const alnum = 'abcdefghijklmnopqrstuvwxyz0123456789'.split('');
const letters = 'abcdefghijklmnopqrstuvwxyz'.split('');
const segment = (minLength: number) =>
  fc.string({ unit: fc.constantFrom(...alnum), minLength, maxLength: 6 });
const nameFrom = (first: fc.Arbitrary<string>, separators: string[], maxLength: number) =>
  fc
    .tuple(
      first,
      segment(0),
      fc.array(fc.tuple(fc.constantFrom(...separators), segment(1)), { maxLength: 6 }),
    )
    .map(([head, rest, parts]) => head + rest + parts.map(([sep, seg]) => sep + seg).join(''))
    .filter((name) => name.length <= maxLength);
const validNamespace = nameFrom(fc.constantFrom(...letters), ['.', '_', '__', '-'], 64);
const validRepository = nameFrom(fc.constantFrom(...alnum), ['.', '_', '__', '-', '/'], 128);

describe('namespace rules', () => {
  it.each(['a', 'core', 'team-a', 'a.b', 'a__b', 'a_b-c.d9', 'x'.repeat(64)])('accepts %j', (name) => {
    // Act
    const result = assertNamespace(name);

    // Assess
    expect(result).toBe(name);
  });

  it.each([
    ['empty', ''],
    ['starts with a digit', '1abc'],
    ['uppercase', 'Core'],
    ['ends with a hyphen', 'abc-'],
    ['ends with an underscore', 'abc_'],
    ['two periods', 'a..b'],
    ['mixed separators', 'a-_b'],
    ['three underscores', 'a___b'],
    ['slash', 'a/b'],
    ['dollar', 'a$b'],
    ['percent-encoded slash', 'a%2fb'],
    ['space', 'a b'],
    ['dot-dot', '..'],
    ['65 characters', 'x'.repeat(65)],
    ['not a string', 42],
  ])('rejects %s', (_why, name) => {
    // Act & Assess
    expectInvalid(() => assertNamespace(name), 'namespace');
  });

  it('accepts every generated valid namespace', () => {
    fc.assert(fc.property(validNamespace, (name) => namespaceRule(name) === undefined));
  });

  it.each([
    ['___', '___'],
    ['..', '..'],
    ['an uppercase letter', 'Q'],
    ['a slash', '/'],
  ])('rejects any namespace containing %s', (_what, bad) => {
    fc.assert(
      fc.property(validNamespace, fc.nat(), (name, at) => {
        const i = at % (name.length + 1);
        return namespaceRule(name.slice(0, i) + bad + name.slice(i)) !== undefined;
      }),
    );
  });

  it('rejects any namespace longer than 64 characters', () => {
    fc.assert(fc.property(validNamespace, (name) => namespaceRule(name + 'a'.repeat(65)) !== undefined));
  });
});

describe('repository rules', () => {
  it.each(['api', '1api', 'team/api', 'a/b/c', 'a__b', 'a.b-c_d/e', 'x'.repeat(128)])(
    'accepts %j',
    (name) => {
      // Act
      const result = assertRepository(name);

      // Assess
      expect(result).toBe(name);
    },
  );

  it.each([
    ['empty', ''],
    ['leading slash', '/api'],
    ['trailing slash', 'api/'],
    ['double slash', 'a//b'],
    ['slash then hyphen', 'a/-b'],
    ['three underscores', 'a___b'],
    ['uppercase', 'Api'],
    ['dollar', 'a$b'],
    ['percent-encoded slash', 'a%2fb'],
    ['path traversal', '../etc'],
    ['space', 'a b'],
    ['129 characters', 'x'.repeat(129)],
    ['not a string', null],
  ])('rejects %s', (_why, name) => {
    // Act & Assess
    expectInvalid(() => assertRepository(name), 'repository');
  });

  it('accepts every generated valid repository', () => {
    fc.assert(fc.property(validRepository, (name) => repositoryRule(name) === undefined));
  });

  it.each([
    ['___', '___'],
    ['..', '..'],
    ['/-', '/-'],
    ['an uppercase letter', 'Q'],
    ['a dollar', '$'],
  ])('rejects any repository containing %s', (_what, bad) => {
    fc.assert(
      fc.property(validRepository, fc.nat(), (name, at) => {
        const i = at % (name.length + 1);
        return repositoryRule(name.slice(0, i) + bad + name.slice(i)) !== undefined;
      }),
    );
  });

  it('rejects any repository longer than 128 characters', () => {
    fc.assert(fc.property(validRepository, (name) => repositoryRule(name + 'a'.repeat(129)) !== undefined));
  });
});

describe('encodeRepository', () => {
  it.each([
    ['api', 'api'],
    ['team/api', 'team$api'],
    ['a/b/c', 'a$b$c'],
  ])('sends %j as %j', (name, encoded) => {
    // Act
    const result = encodeRepository(name);

    // Assess
    expect(result).toBe(encoded);
  });

  it('validates before encoding', () => {
    // Act & Assess
    expectInvalid(() => encodeRepository('team//api'), 'repository');
  });

  it('never leaves a slash in a generated name', () => {
    fc.assert(fc.property(validRepository, (name) => !encodeRepository(name).includes('/')));
  });
});

describe('user ids, user names and levels', () => {
  it('accepts a 32-character lowercase hex user id', () => {
    // Act
    const result = assertUserId('fb3f175c1fd146ab8cdae3272be6107b');

    // Assess
    expect(result).toBe('fb3f175c1fd146ab8cdae3272be6107b');
  });

  it.each([
    ['uppercase', 'FB3F175C1FD146AB8CDAE3272BE6107B'],
    ['31 characters', 'fb3f175c1fd146ab8cdae3272be6107'],
    ['33 characters', 'fb3f175c1fd146ab8cdae3272be6107bb'],
    ['not hex', 'gb3f175c1fd146ab8cdae3272be6107b'],
    ['path traversal', '../../../../../../../../etc/pass'],
    ['undefined', undefined],
  ])('rejects a user id that is %s', (_why, id) => {
    // Act & Assess
    expectInvalid(() => assertUserId(id), 'user_id');
  });

  it.each(['user01', 'a', 'dev.ops-team_1'])('accepts the user name %j', (name) => {
    // Act & Assess
    expect(assertUserName(name)).toBe(name);
  });

  it.each([
    ['empty', ''],
    ['padded', ' alice'],
    ['with a newline', 'alice\nbob'],
    ['65 characters', 'u'.repeat(65)],
    ['a number', 7],
  ])('rejects a user name that is %s', (_why, name) => {
    // Act & Assess
    expectInvalid(() => assertUserName(name), 'user_name');
  });

  it.each([1, 3, 7])('accepts the level %d', (level) => {
    // Act & Assess
    expect(assertAuthLevel(level)).toBe(level);
  });

  it.each([0, 2, 8, 7.5, '7', null])('rejects the level %j', (level) => {
    // Act & Assess
    expectInvalid(() => assertAuthLevel(level), 'auth');
  });
});

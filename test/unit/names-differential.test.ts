/**
 * Two readings of the same seed text, written apart: the client's rules (lib/swr/names.ts) and the
 * simulator's (lib/sim/names.ts). On names generated to sit on the edges of the rules they must
 * agree; where they did not, the seed text decided which one was wrong.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { namespaceProblem, repositoryProblem, userIdProblem, userNameProblem } from '../../lib/sim/names.ts';
import { namespaceRule, repositoryRule, userIdRule, userNameRule } from '../../lib/swr/names.ts';

const separators = [
  '.',
  '_',
  '-',
  '/',
  '__',
  '___',
  '._',
  '_.',
  '-_',
  '/_',
  '_/',
  '__.',
  '.__',
  '..',
  '//',
  '--',
];
const oddities = [
  '$',
  ' ',
  'A',
  'Z',
  '%2f',
  '\u00e9',
  '\u0131',
  '\u212a',
  '\uff41',
  '\u0000',
  '\n',
  '\ud83d\ude00',
];
const ends = ['a', 'z', '0', '9', '.', '_', '-', '/', 'A', '\u00e9'];

/** Lowercase letters and digits: the parts between separators, empty to make separators meet. */
const segment = fc.string({ unit: fc.constantFrom(...'abz019'), maxLength: 4 });

/**
 * Names biased towards the rules' edges: mostly well-formed segments joined by (runs of)
 * separators, sometimes an odd character, with odd first and last characters now and then.
 */
const edgyName = (maxParts: number) =>
  fc
    .tuple(
      fc.oneof(
        { arbitrary: fc.constantFrom(...ends), weight: 1 },
        { arbitrary: fc.constant('a'), weight: 3 },
      ),
      segment,
      fc.array(
        fc.tuple(
          fc.oneof(
            { arbitrary: fc.constantFrom(...separators), weight: 5 },
            { arbitrary: fc.constantFrom(...oddities), weight: 1 },
          ),
          segment,
        ),
        { maxLength: maxParts },
      ),
      fc.oneof(
        { arbitrary: fc.constantFrom(...ends), weight: 1 },
        { arbitrary: fc.constant('b'), weight: 3 },
      ),
    )
    .map(([head, first, parts, tail]) => head + first + parts.map(([sep, seg]) => sep + seg).join('') + tail);

/** Names right at the length bounds: `length` letters with a separator somewhere inside. */
const atLength = (length: number) =>
  fc
    .tuple(
      fc.integer({ min: 1, max: Math.max(1, length - 2) }),
      fc.constantFrom('.', '_', '-', '/', '__', 'a'),
    )
    .map(([at, sep]) =>
      `${'a'.repeat(at)}${sep}${'b'.repeat(Math.max(0, length - at - sep.length))}`.slice(0, length),
    );

const names = fc.oneof(
  { arbitrary: edgyName(12), weight: 6 },
  { arbitrary: fc.integer({ min: 62, max: 66 }).chain(atLength), weight: 2 },
  { arbitrary: fc.integer({ min: 126, max: 130 }).chain(atLength), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }), weight: 1 },
);

const valid = (problem: string | undefined) => problem === undefined;

describe('client and simulator name rules agree', () => {
  it.each([
    ['namespace', namespaceRule, namespaceProblem],
    ['repository', repositoryRule, repositoryProblem],
  ] as const)('on %s names at the edges of the rules', (_kind, client, simulator) => {
    // Assess
    fc.assert(
      fc.property(names, (name) => {
        expect({ name, valid: valid(client(name)) }).toEqual({ name, valid: valid(simulator(name)) });
      }),
      { seed: 20261120, numRuns: 4000 },
    );
  });

  it('on user ids', () => {
    const ids = fc.oneof(
      fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF g'), minLength: 30, maxLength: 34 }),
      edgyName(3),
    );
    // Assess
    fc.assert(
      fc.property(ids, (id) => {
        expect({ id, valid: valid(userIdRule(id)) }).toEqual({ id, valid: valid(userIdProblem(id)) });
      }),
      { seed: 20261120, numRuns: 2000 },
    );
  });

  it('on user names (within the length bound of the client)', () => {
    const userNames = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 12 }),
      fc
        .tuple(
          fc.constantFrom('', ' ', '\t', '\u00a0', '\u3000', '\n'),
          fc.string({ unit: fc.constantFrom(...'ab J.-_@'), minLength: 1, maxLength: 8 }),
          fc.constantFrom('', '\u0000', '\u001f', '\u007f', '\u0085', '\u009f', '\u00a0', 'x'),
          fc.constantFrom('', ' ', 'z'),
        )
        .map((parts) => parts.join('')),
    );
    // Assess
    fc.assert(
      fc.property(
        userNames.filter((name) => name.length <= 64),
        (name) => {
          expect({ name, valid: valid(userNameRule(name)) }).toEqual({
            name,
            valid: valid(userNameProblem(name)),
          });
        },
      ),
      { seed: 20261120, numRuns: 3000 },
    );
  });

  it.each([
    // Cases from the seed text itself, each with the answer the text gives.
    ['core', true, true],
    ['a__b', true, true],
    ['a___b', false, false],
    ['a._b', false, false],
    ['a/_b', false, false],
    ['1core', false, true],
    ['core-', false, false],
    ['team/api', false, true],
    ['Team', false, false],
    ['a'.repeat(64), true, true],
    ['a'.repeat(65), false, true],
    ['a'.repeat(128), false, true],
    ['a'.repeat(129), false, false],
  ])('%j: namespace %s, repository %s, both readings', (name, namespaceOk, repositoryOk) => {
    // Assess
    expect([valid(namespaceRule(name)), valid(namespaceProblem(name))]).toEqual([namespaceOk, namespaceOk]);
    expect([valid(repositoryRule(name)), valid(repositoryProblem(name))]).toEqual([
      repositoryOk,
      repositoryOk,
    ]);
  });
});

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { hasDuplicateKeys } from '../../lib/core/json-keys.ts';
import { loadPolicyFile, parsePolicyText } from '../../lib/core/policy.ts';
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import { compilePolicyFile } from '../../lib/deploy/compile-policy.ts';
import { ConfigError } from '../../lib/errors.ts';

/*
 * The functions read a policy compiled to JSON without the YAML reader (`parsePolicyText`'s fast
 * path); anything that path does not accept goes to the YAML reader. These tests hold the two to
 * one meaning: the same policy, or the same refusal with the same located messages.
 */

const root = join(import.meta.dirname, '..', '..');
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swr-policy-json-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The result of a parse as data: the policy, or the refusal's message and problems. */
const outcome = async (parse: () => unknown): Promise<unknown> => {
  try {
    return { policy: await parse() };
  } catch (error) {
    if (error instanceof ConfigError) return { refused: error.message, problems: error.problems };
    throw error;
  }
};

const jsonKey = fc.constantFrom('a', 'b', 'c', 'teams', '\\u0061');
const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string; object: string; array: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom('1', 'true', 'null', '"x"', '"a\\"b"'),
    tie('object'),
    tie('array'),
  ),
  object: fc
    .array(fc.tuple(jsonKey, tie('value')), { maxLength: 4 })
    .map((entries) => `{${entries.map(([key, value]) => `"${key}" : ${value}`).join(',')}}`),
  array: fc.array(tie('value'), { maxLength: 3 }).map((items) => `[ ${items.join(', ')} ]`),
})).object;

describe('hasDuplicateKeys', () => {
  it('agrees with the YAML reader (unique keys) on any JSON text', () => {
    fc.assert(
      fc.property(jsonText, (text) => {
        // Act
        const found = hasDuplicateKeys(text);

        // Assess
        const yamlRefuses = parseDocument(text, { uniqueKeys: true }).errors.some((error) =>
          /unique/i.test(error.message),
        );
        expect(found).toBe(yamlRefuses);
      }),
      { seed: 20261130, numRuns: 300 },
    );
  });

  it.each([
    ['{"a": 1, "b": {"a": 2}}', false],
    ['{"a": 1, "a": 2}', true],
    ['[{"a": 1}, {"a": 2}]', false],
    ['{"k": "a\\": 1, \\"a", "a": 1}', false],
    ['{"a": 1, "\\u0061": 2}', true],
  ])('%s: %s', (text, expected) => {
    // Act
    const found = hasDuplicateKeys(text);

    // Assess
    expect(found).toBe(expected);
  });
});

const name = fc.constantFrom('core', 'tools', 'Core', 'a__b', '');
const grant = fc.record(
  {
    namespace: name,
    repository: fc.constantFrom('api/server', 'api//server', 'web', undefined),
    permission: fc.constantFrom('read', 'write', 'manage', 'admin'),
    exclusive: fc.constantFrom(true, false, 'yes'),
    colour: fc.constant('red'),
  },
  { requiredKeys: ['namespace'] },
);
const policyDocument = fc.record(
  {
    version: fc.constantFrom(1, 2),
    protectedUsers: fc.array(fc.constantFrom('c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1', 'robot'), { maxLength: 2 }),
    managedNamespaces: fc.array(name, { maxLength: 2 }),
    identity: fc.record({
      iamName: fc.constantFrom('email', 'attribute nickName', 'badge'),
      lowercase: fc.boolean(),
    }),
    teams: fc.dictionary(
      fc.constantFrom('platform', 'sre', 'Bad Team'),
      fc.oneof(
        fc.array(grant, { maxLength: 3 }),
        fc.record({
          grants: fc.array(grant, { maxLength: 2 }),
          idpGroups: fc.array(fc.constantFrom('SRE', ''), { maxLength: 2 }),
        }),
      ),
      { maxKeys: 3 },
    ),
  },
  { requiredKeys: ['version'] },
);

describe('parsePolicyText on JSON', () => {
  it('gives what the YAML reader gives: the same policy, or the same located refusal', async () => {
    await fc.assert(
      fc.asyncProperty(policyDocument, fc.constantFrom(0, 2), async (document, indent) => {
        // Prepare
        const text = JSON.stringify(document, null, indent);

        // Act
        const fast = await outcome(() => parsePolicyText(text, 'policy.json'));

        // Assess
        expect(fast).toEqual(await outcome(() => parsePolicy(text, 'policy.json')));
      }),
      { seed: 20261130, numRuns: 200 },
    );
  });

  it('refuses a key given twice, which JSON.parse alone would let the last one win', async () => {
    // Prepare
    const text =
      '{\n  "version": 1,\n  "teams": { "a": [], "a": [{ "namespace": "core", "permission": "manage" }] }\n}\n';

    // Act
    const result = await outcome(() => parsePolicyText(text, 'policy.json'));

    // Assess
    expect(result).toMatchObject({
      problems: [expect.stringMatching(/^policy\.json:3:\d+: YAML syntax: Map keys must be unique/)],
    });
  });

  it('names the JSON file, line and column of each problem', async () => {
    // Prepare
    const path = join(dir, 'bad.json');
    await writeFile(
      path,
      [
        '{',
        '  "version": 1,',
        '  "teams": {',
        '    "platform": [',
        '      { "namespace": "core", "permission": "admin" }',
        '    ]',
        '  }',
        '}',
        '',
      ].join('\n'),
    );

    // Act
    const result = await outcome(() => loadPolicyFile(path));

    // Assess
    expect(result).toMatchObject({
      problems: [`${path}:5:44: teams.platform[0].permission: must be read, write or manage`],
    });
  });
});

describe('compilePolicyFile', () => {
  it('writes the policy as JSON that reads back, without YAML, as the same policy', async () => {
    // Prepare
    const target = join(dir, 'out', 'demo.json');

    // Act
    const policy = await compilePolicyFile({ serviceDir: root, source: 'config/demo-policy.yaml', target });
    const json = await readFile(target, 'utf8');

    // Assess
    expect(await parsePolicyText(json, 'config/demo-policy.yaml')).toEqual(policy);
    expect(policy).toEqual(
      await loadPolicyFile(join(root, 'config', 'demo-policy.yaml')).then((p) => ({
        ...p,
        sourcePath: 'config/demo-policy.yaml',
      })),
    );
  });

  it('refuses a bad policy with the problems located in the file as written, and writes nothing', async () => {
    // Prepare
    const target = join(dir, 'out', 'bad.json');

    // Act
    const result = await outcome(() =>
      compilePolicyFile({ serviceDir: root, source: 'test/fixtures/policies/many-problems.yaml', target }),
    );

    // Assess
    expect(result).toMatchObject({
      problems: expect.arrayContaining([
        expect.stringMatching(/^test\/fixtures\/policies\/many-problems\.yaml:\d+:\d+: /),
      ]),
    });
    await expect(readFile(target, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

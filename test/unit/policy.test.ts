import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allPolicyTargets,
  createFilePolicyLoader,
  grantsOfTeam,
  identityOf,
  idpGroupsOfTeam,
  isKnownTeam,
  loadPolicyFile,
  teamsOfIdpGroup,
} from '../../lib/core/policy.ts';
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import { targetKey } from '../../lib/domain.ts';
import { ConfigError, ErrorCodes } from '../../lib/errors.ts';

const fixtures = join(import.meta.dirname, '../fixtures/policies');
const demoPolicyPath = join(import.meta.dirname, '../../config/demo-policy.yaml');

/** A valid policy text with `grants` as the platform team's (flow-style YAML lines). */
const policyText = (grants: string[], extra = ''): string =>
  [
    'version: 1',
    extra,
    'teams:',
    '  platform:',
    ...grants.map((grant) => `    - ${grant}`),
    '  security:',
    '    - { namespace: core, repository: api/server, permission: manage }',
  ].join('\n');

const problemsOf = (text: string, path = 'policy.yaml'): ConfigError => {
  try {
    parsePolicy(text, path);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected the policy to be refused');
};

describe('parsePolicy: valid policies', () => {
  it('reads the demo policy consistent with the demo seed', async () => {
    // Act
    const policy = await loadPolicyFile(demoPolicyPath);

    // Assess
    expect(Object.keys(policy.teams).sort()).toEqual([
      'backend',
      'data',
      'frontend',
      'platform',
      'security',
      'sre',
    ]);
    expect(policy.protectedUsers).toEqual(['c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1']);
    expect(policy.managedNamespaces).toEqual(['core', 'tools', 'data']);
    expect(policy.sourcePath).toBe(demoPolicyPath);
    const seedRepositories = {
      core: ['api/server', 'api/worker', 'web/frontend', 'base/node'],
      tools: ['ci/runner', 'lint'],
      data: ['etl/jobs', 'warehouse/loader'],
    } as Record<string, string[]>;
    for (const target of allPolicyTargets(policy)) {
      expect(Object.keys(seedRepositories)).toContain(target.namespace);
      if (target.kind === 'repo') expect(seedRepositories[target.namespace]).toContain(target.repository);
    }
  });

  it('reads JSON as well as YAML, with defaults filled in', async () => {
    // Act
    const policy = await loadPolicyFile(join(fixtures, 'minimal.json'));

    // Assess
    expect(policy).toEqual({
      version: 1,
      sourcePath: join(fixtures, 'minimal.json'),
      protectedUsers: [],
      managedNamespaces: [],
      teams: {
        platform: [
          {
            target: { kind: 'repo', namespace: 'core', repository: 'api/server' },
            permission: 'write',
            level: 3,
            exclusive: false,
          },
        ],
      },
      idpGroups: { platform: ['platform'] },
      identity: { source: 'userName', lowercase: false },
    });
  });

  it('maps every grant to a target and an SWR level', () => {
    // Act
    const policy = parsePolicy(
      policyText([
        '{ namespace: core, repository: api/server, permission: write }',
        '{ namespace: core, repository: api/worker, permission: read, exclusive: true }',
        '{ namespace: tools, permission: read }',
      ]),
      'p.yaml',
    );

    // Assess
    expect(grantsOfTeam(policy, 'platform')).toEqual([
      {
        target: { kind: 'repo', namespace: 'core', repository: 'api/server' },
        permission: 'write',
        level: 3,
        exclusive: false,
      },
      {
        target: { kind: 'repo', namespace: 'core', repository: 'api/worker' },
        permission: 'read',
        level: 1,
        exclusive: true,
      },
      { target: { kind: 'namespace', namespace: 'tools' }, permission: 'read', level: 1, exclusive: false },
    ]);
    expect(grantsOfTeam(policy, 'security')).toEqual([
      {
        target: { kind: 'repo', namespace: 'core', repository: 'api/server' },
        permission: 'manage',
        level: 7,
        exclusive: false,
      },
    ]);
  });

  it('allows a team without grants (known, gives nothing) and deduplicates protected users', () => {
    // Act
    const policy = parsePolicy(
      'version: 1\nprotectedUsers: [c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1, c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1]\nteams:\n  interns: []\n',
      'p.yaml',
    );

    // Assess
    expect(isKnownTeam(policy, 'interns')).toBe(true);
    expect(grantsOfTeam(policy, 'interns')).toEqual([]);
    expect(policy.protectedUsers).toEqual(['c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1']);
  });
});

describe('parsePolicy: every kind of problem names the file, the YAML path and the rule', () => {
  it.each([
    [
      'unknown field',
      policyText(['{ namespace: core, repository: api/server, permission: write, colour: red }']),
      'policy.yaml:5:',
      'teams.platform[0].colour: unknown field',
    ],
    [
      'bad namespace',
      policyText([
        '{ namespace: core, permission: read }',
        '{ namespace: Core, repository: api/server, permission: read }',
      ]),
      'policy.yaml:6:',
      'teams.platform[1].namespace: "Core" only lowercase letters',
    ],
    [
      'bad repository',
      policyText(['{ namespace: core, repository: api//server, permission: read }']),
      'policy.yaml:5:',
      'teams.platform[0].repository: "api//server" separators may not stand next to each other',
    ],
    [
      'bad permission',
      policyText(['{ namespace: core, repository: api/server, permission: admin }']),
      'policy.yaml:5:',
      'teams.platform[0].permission: must be read, write or manage',
    ],
    [
      'missing permission',
      policyText(['{ namespace: core, repository: api/server }']),
      'policy.yaml:5:',
      'teams.platform[0].permission: is required',
    ],
    [
      'bad exclusive',
      policyText(['{ namespace: core, repository: api/server, permission: read, exclusive: "yes" }']),
      'policy.yaml:5:',
      'teams.platform[0].exclusive: must be true or false',
    ],
    [
      'bad protected user id',
      policyText(['{ namespace: core, permission: read }'], 'protectedUsers: [robot]'),
      'policy.yaml:2:',
      'protectedUsers[0]: "robot" must be an IAM user ID',
    ],
    [
      'bad managed namespace',
      policyText(['{ namespace: core, permission: read }'], 'managedNamespaces: [_core]'),
      'policy.yaml:2:',
      'managedNamespaces[0]: "_core"',
    ],
    [
      'duplicate target',
      policyText([
        '{ namespace: core, repository: api/server, permission: read }',
        '{ namespace: core, repository: api/server, permission: write }',
      ]),
      'policy.yaml:6:',
      'teams.platform[1]: duplicate target core/api/server (also at teams.platform[0])',
    ],
    [
      'duplicate namespace target',
      policyText(['{ namespace: tools, permission: read }', '{ namespace: tools, permission: write }']),
      'policy.yaml:6:',
      'teams.platform[1]: duplicate target tools',
    ],
    [
      'bad team name',
      'version: 1\nteams:\n  "-ops": []\n',
      'policy.yaml:3:',
      'teams["-ops"]: team name must start with a letter or digit',
    ],
    ['no teams', 'version: 1\nteams: {}\n', 'policy.yaml:2:', 'teams: must name at least one team'],
    ['missing teams', 'version: 1\n', 'policy.yaml:1:', 'teams: must map team names to lists of grants'],
    [
      'grants not a list',
      'version: 1\nteams:\n  platform: core\n',
      'policy.yaml:3:',
      'teams.platform: must be a list of grants',
    ],
    ['wrong version', 'version: 2\nteams:\n  a: []\n', 'policy.yaml:1:', 'version: must be 1'],
    [
      'unknown top-level field',
      'version: 1\nrepos: []\nteams:\n  a: []\n',
      'policy.yaml:2:',
      'repos: unknown field',
    ],
    ['empty file', '# nothing\n', 'policy.yaml', 'the policy is empty'],
    ['YAML syntax error', 'version: 1\nteams: [\n', 'policy.yaml:3:1', 'YAML syntax'],
    [
      'duplicate YAML key',
      'version: 1\nversion: 1\nteams:\n  a: []\n',
      'policy.yaml:2:1',
      'Map keys must be unique',
    ],
    ['JSON syntax error', '{"version": 1, "teams": {]}', 'policy.yaml:1:', 'YAML syntax'],
    [
      'unknown field in an object-form team',
      'version: 1\nteams:\n  sre:\n    grants: []\n    idpGroup: [SRE]\n',
      'policy.yaml:5:',
      'teams.sre.idpGroup: unknown field (allowed here: grants, idpGroups)',
    ],
    [
      'bad grant in an object-form team',
      'version: 1\nteams:\n  sre:\n    idpGroups: [SRE]\n    grants:\n      - { namespace: core, permission: read }\n      - { namespace: Core, permission: read }\n',
      'policy.yaml:7:',
      'teams.sre.grants[1].namespace: "Core" only lowercase letters',
    ],
    [
      'duplicate target in an object-form team',
      'version: 1\nteams:\n  sre:\n    grants:\n      - { namespace: tools, permission: read }\n      - { namespace: tools, permission: write }\n',
      'policy.yaml:6:',
      'teams.sre.grants[1]: duplicate target tools (also at teams.sre.grants[0])',
    ],
    [
      'idpGroups not a list',
      'version: 1\nteams:\n  sre:\n    grants: []\n    idpGroups: SRE\n',
      'policy.yaml:5:',
      'teams.sre.idpGroups: must be a list of identity-provider group names',
    ],
    [
      'empty idpGroups',
      'version: 1\nteams:\n  sre:\n    idpGroups: []\n',
      'policy.yaml:4:',
      'teams.sre.idpGroups: must name at least one group',
    ],
    [
      'empty group name',
      'version: 1\nteams:\n  sre:\n    idpGroups: [SRE, ""]\n',
      'policy.yaml:4:',
      'teams.sre.idpGroups[1]: must not be empty',
    ],
    [
      'one grant without the list',
      'version: 1\nteams:\n  sre: { namespace: core, permission: read }\n',
      'policy.yaml:3:',
      'teams.sre: must be a list of grants, or { grants: [...], idpGroups: [...] }; this looks like one grant',
    ],
    [
      'team neither a list nor an object',
      'version: 1\nteams:\n  sre: 7\n',
      'policy.yaml:3:',
      'teams.sre: must be a list of grants, or { grants: [...], idpGroups: [...] }',
    ],
    [
      'unknown iamName',
      'version: 1\nidentity:\n  iamName: upn\nteams:\n  a: []\n',
      'policy.yaml:3:',
      'identity.iamName: "upn" must be userName, email, emailLocalPart, externalId or "attribute <name>"',
    ],
    [
      'attribute without a name',
      'version: 1\nidentity:\n  iamName: attribute\nteams:\n  a: []\n',
      'policy.yaml:3:',
      'identity.iamName: "attribute" must be',
    ],
    [
      'missing iamName',
      'version: 1\nidentity:\n  lowercase: true\nteams:\n  a: []\n',
      'policy.yaml:3:',
      'identity.iamName: is required',
    ],
    [
      'bad lowercase',
      'version: 1\nidentity:\n  iamName: email\n  lowercase: "yes"\nteams:\n  a: []\n',
      'policy.yaml:4:',
      'identity.lowercase: must be true or false',
    ],
    [
      'unknown identity field',
      'version: 1\nidentity:\n  iamName: email\n  domain: corp\nteams:\n  a: []\n',
      'policy.yaml:4:',
      'identity.domain: unknown field (allowed here: iamName, lowercase)',
    ],
  ])('%s', (_name, text, location, problem) => {
    // Act
    const error = problemsOf(text);

    // Assess
    expect(error.code).toBe(ErrorCodes.policy);
    expect(error.retryable).toBe(false);
    expect(error.message).toContain('invalid access policy policy.yaml');
    const line = error.problems.find((p) => p.includes(problem));
    expect(line, error.message).toBeDefined();
    expect(line?.startsWith(location)).toBe(true);
  });

  it('lists every problem of a file, in file order, with the file path on each', async () => {
    // Prepare
    const path = join(fixtures, 'many-problems.yaml');

    // Act
    const loading = loadPolicyFile(path);

    // Assess
    const error = (await loading.then(
      () => undefined,
      (e: unknown) => e,
    )) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.problems.map((p) => p.replace(/^.*?:\d+:\d+: /, '').replace(/:.*$/, ''))).toEqual([
      'protectedUsers[0]',
      'teams.platform[1].namespace',
      'teams.platform[2].repository',
      'teams.platform[3].permission',
      'teams.platform[4]',
      'teams.platform[5].colour',
    ]);
    for (const problem of error.problems) expect(problem.startsWith(`${path}:`)).toBe(true);
    expect(error.message).toContain(path);
  });

  it('reports a YAML syntax error with line and column', async () => {
    // Act (not named .yaml: Biome would try to format the broken file)
    const loading = loadPolicyFile(join(fixtures, 'bad-syntax.yaml.txt'));

    // Assess
    await expect(loading).rejects.toThrow(/bad-syntax\.yaml\.txt:\d+:\d+: YAML syntax/);
  });

  it('refuses a file that cannot be read, naming it', async () => {
    // Act
    const loading = loadPolicyFile(join(fixtures, 'missing.yaml'));

    // Assess
    await expect(loading).rejects.toBeInstanceOf(ConfigError);
    await expect(loading).rejects.toThrow(/missing\.yaml \(ENOENT\)/);
  });
});

describe('parsePolicy: identity-provider groups and identity mapping', () => {
  const mixed = [
    'version: 1',
    'identity:',
    '  iamName: emailLocalPart',
    '  lowercase: true',
    'teams:',
    '  platform:',
    '    - { namespace: core, repository: api/server, permission: write }',
    '  sre:',
    '    idpGroups: [SRE, "Platform Engineers"]',
    '    grants:',
    '      - { namespace: tools, permission: write }',
    '  data:',
    '    grants:',
    '      - { namespace: data, permission: read }',
    '  infra:',
    '    idpGroups: ["Platform Engineers"]',
  ].join('\n');

  it('keeps the list form and reads the object form beside it', () => {
    // Act
    const policy = parsePolicy(mixed, 'p.yaml');

    // Assess
    expect(Object.keys(policy.teams).sort()).toEqual(['data', 'infra', 'platform', 'sre']);
    expect(grantsOfTeam(policy, 'sre')).toEqual([
      { target: { kind: 'namespace', namespace: 'tools' }, permission: 'write', level: 3, exclusive: false },
    ]);
    expect(grantsOfTeam(policy, 'infra')).toEqual([]);
    expect(idpGroupsOfTeam(policy, 'sre')).toEqual(['SRE', 'Platform Engineers']);
    expect(idpGroupsOfTeam(policy, 'platform')).toEqual(['platform']);
    expect(idpGroupsOfTeam(policy, 'nobody')).toEqual([]);
    expect(identityOf(policy)).toEqual({ source: 'emailLocalPart', lowercase: true });
  });

  it.each([
    ['Platform Engineers', ['infra', 'sre']],
    ['  platform engineers ', ['infra', 'sre']],
    ['SRE', ['sre']],
    ['platform', ['platform']],
    ['PLATFORM', ['platform']],
    // A team with idpGroups is not matched by its own name any more.
    ['data', ['data']],
    ['sre', ['sre']],
    ['Interns', []],
    ['constructor', []],
  ])('maps the IdP group %j to the teams %j', (group, teams) => {
    // Prepare
    const policy = parsePolicy(mixed, 'p.yaml');

    // Act
    const mapped = teamsOfIdpGroup(policy, group);

    // Assess
    expect(mapped).toEqual(teams);
  });

  it.each([
    ['userName', { source: 'userName', lowercase: false }],
    ['email', { source: 'email', lowercase: false }],
    ['externalId', { source: 'externalId', lowercase: false }],
    ['"attribute nickName"', { source: 'attribute', attribute: 'nickName', lowercase: false }],
    [
      '"attribute urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"',
      {
        source: 'attribute',
        attribute: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber',
        lowercase: false,
      },
    ],
  ])('reads iamName %s', (iamName, identity) => {
    // Act
    const policy = parsePolicy(`version: 1\nidentity:\n  iamName: ${iamName}\nteams:\n  a: []\n`, 'p.yaml');

    // Assess
    expect(identityOf(policy)).toEqual(identity);
  });

  it('treats a policy built in code (no idpGroups, no identity) as name matching and userName', () => {
    // Prepare
    const policy = { ...parsePolicy(mixed, 'p.yaml'), idpGroups: undefined, identity: undefined };

    // Act
    const teams = teamsOfIdpGroup(policy, 'SRE');

    // Assess
    expect(teams).toEqual(['sre']);
    expect(identityOf(policy)).toEqual({ source: 'userName', lowercase: false });
  });
});

describe('policy helpers', () => {
  const policy = parsePolicy(
    policyText([
      '{ namespace: core, repository: web/frontend, permission: read }',
      '{ namespace: tools, permission: read }',
      '{ namespace: core, repository: api/server, permission: write }',
    ]),
    'p.yaml',
  );

  it('lists every target once, namespaces first, then by key', () => {
    // Act
    const targets = allPolicyTargets(policy);

    // Assess
    expect(targets.map((t) => `${t.kind}:${targetKey(t)}`)).toEqual([
      'namespace:tools',
      'repo:core/api/server',
      'repo:core/web/frontend',
    ]);
  });

  it.each([
    ['platform', true, 3],
    ['security', true, 1],
    ['marketing', false, 0],
    ['constructor', false, 0],
    ['toString', false, 0],
  ])('team %s: known=%s, %i grants', (team, known, grants) => {
    // Act
    const result = { known: isKnownTeam(policy, team), grants: grantsOfTeam(policy, team).length };

    // Assess
    expect(result).toEqual({ known, grants });
  });
});

describe('createFilePolicyLoader', () => {
  let directory: string;

  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'policy-loader-'));
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('keeps the first successful load and retries after a failed one', async () => {
    // Prepare
    const path = join(directory, 'policy.yaml');
    const loader = createFilePolicyLoader(path);

    // Act
    const first = await loader.load().then(
      () => 'loaded',
      (error: unknown) => (error as ConfigError).code,
    );
    await writeFile(path, 'version: 1\nteams:\n  platform: []\n');
    const second = await loader.load();
    await writeFile(path, 'version: 1\nteams:\n  changed: []\n');
    const third = await loader.load();

    // Assess
    expect(first).toBe(ErrorCodes.policy);
    expect(isKnownTeam(second, 'platform')).toBe(true);
    expect(third).toBe(second);
  });
});

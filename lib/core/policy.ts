/**
 * The access policy: which team gets what on which repository or namespace, and which users
 * are never touched. Only the policy can grant, so a policy that is at all unclear is refused
 * at start-up with every problem listed (file, line, YAML path, rule), never half-loaded.
 *
 * A team is a list of grants, or an object `{ grants, idpGroups }` naming the identity-provider
 * groups whose members are in the team (default: the group named like the team). The top-level
 * `identity` block says how an IdP user becomes an IAM user (`iamName`, `lowercase`).
 */
import { readFile } from 'node:fs/promises';
import {
  AuthLevels,
  type IamNameSource,
  type IdentityMapping,
  type Policy,
  type PolicyGrant,
  type Target,
  targetKey,
} from '../domain.ts';
import { ConfigError, ErrorCodes } from '../errors.ts';
import * as z from '../zod.ts';
import { teamNameRule } from './events.ts';
import { hasDuplicateKeys } from './json-keys.ts';
import { namespaceRule, repositoryRule, userIdRule } from './names.ts';

/** The port through which handlers get the policy (a file in the function zip in production). */
interface PolicyLoader {
  load(): Promise<Policy>;
}

const requiredString = () =>
  z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be a string') });

const ruleChecked = (rule: (value: unknown) => string | undefined) =>
  requiredString().check(
    z.superRefine((value, ctx) => {
      const broken = rule(value);
      if (broken !== undefined)
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(value)} ${broken}` });
    }),
  );

const grantFields = ['namespace', 'repository', 'permission', 'exclusive'] as const;
const teamFields = ['grants', 'idpGroups'] as const;
const identityFields = ['iamName', 'lowercase'] as const;
const rootFields = ['version', 'protectedUsers', 'managedNamespaces', 'identity', 'teams'] as const;

const iamNameSources = ['userName', 'email', 'emailLocalPart', 'externalId'] as const;
const attributeSource = /^attribute\s+([A-Za-z][\w.:$-]*)$/;
const iamNameRule = `must be ${iamNameSources.join(', ')} or "attribute <name>"`;

const grantSchema = z.strictObject({
  namespace: ruleChecked(namespaceRule),
  repository: z.optional(ruleChecked(repositoryRule)),
  permission: z.enum(['read', 'write', 'manage'], {
    error: (issue) => (issue.input === undefined ? 'is required' : 'must be read, write or manage'),
  }),
  exclusive: z._default(z.boolean({ error: 'must be true or false' }), false),
});

/** An IdP group name as the identity provider spells it (Entra and Okta allow almost anything). */
const idpGroupSchema = z
  .string({ error: 'must be a group name (a string)' })
  .check(
    z.minLength(1, { error: 'must not be empty' }),
    z.maxLength(256, { error: 'must be at most 256 characters' }),
    z.regex(/^[^\p{Cc}]+$/u, { error: 'must not contain control characters' }),
  );

const teamShapeRule = 'must be a list of grants, or { grants: [...], idpGroups: [...] }';

const teamObjectSchema = z.strictObject(
  {
    grants: z._default(z.array(grantSchema, { error: 'must be a list of grants' }), []),
    idpGroups: z.optional(
      z.array(idpGroupSchema, { error: 'must be a list of identity-provider group names' }).check(
        z.minLength(1, {
          error: 'must name at least one group (leave it out to match the group named like the team)',
        }),
      ),
    ),
  },
  { error: teamShapeRule },
);

/** The list form is the object form without idpGroups: one schema, one set of messages. */
const teamSchema = z.pipe(
  z.transform((value) => (Array.isArray(value) ? { grants: value } : value)),
  teamObjectSchema,
);

const identitySchema = z.strictObject(
  {
    iamName: z.pipe(
      z.string({ error: (issue) => (issue.input === undefined ? 'is required' : iamNameRule) }),
      z.transform((value: string, ctx): Pick<IdentityMapping, 'source' | 'attribute'> => {
        const trimmed = value.trim();
        if ((iamNameSources as readonly string[]).includes(trimmed))
          return { source: trimmed as IamNameSource };
        const attribute = attributeSource.exec(trimmed)?.[1];
        if (attribute !== undefined) return { source: 'attribute', attribute };
        ctx.issues.push({ code: 'custom', message: `${JSON.stringify(value)} ${iamNameRule}`, input: value });
        return z.NEVER;
      }),
    ),
    lowercase: z._default(z.boolean({ error: 'must be true or false' }), false),
  },
  { error: 'must be an object: { iamName: ..., lowercase: true|false }' },
);

const policySchema = z.strictObject({
  version: z.literal(1, { error: 'must be 1 (the only policy format version)' }),
  protectedUsers: z._default(
    z.array(ruleChecked(userIdRule), { error: 'must be a list of IAM user ids' }),
    [],
  ),
  managedNamespaces: z._default(
    z.array(ruleChecked(namespaceRule), { error: 'must be a list of namespaces' }),
    [],
  ),
  identity: z.optional(identitySchema),
  teams: z.record(z.string(), teamSchema, {
    error: 'must map team names to lists of grants',
  }),
});

/** What a policy without an `identity` block means. */
const defaultIdentity: IdentityMapping = { source: 'userName', lowercase: false };

type PathSegment = string | number;

/** `['teams', 'platform', 1, 'repository']` → `teams.platform[1].repository`. */
const formatPath = (path: readonly PathSegment[]): string => {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][\w-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === '' ? '(top level)' : out;
};

interface Problem {
  path: PathSegment[];
  rule: string;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Where a team's grants sit in the file: the team itself (list form) or its `grants` (object form). */
const grantsPathOf = (raw: unknown, team: string): PathSegment[] =>
  isRecord(raw) && isRecord(raw.teams) && Array.isArray(raw.teams[team])
    ? ['teams', team]
    : ['teams', team, 'grants'];

/**
 * A team written as one grant without the list (`platform: { namespace: core, … }`): a common slip
 * that the object form would otherwise report as unknown fields.
 */
const looksLikeOneGrant = (value: unknown): boolean =>
  isRecord(value) &&
  !teamFields.some((field) => Object.hasOwn(value, field)) &&
  grantFields.some((field) => Object.hasOwn(value, field));

/** Checks zod cannot express per key: team names, and the same target twice in one team. */
const crossChecks = (raw: unknown): Problem[] => {
  if (!isRecord(raw) || !isRecord(raw.teams)) return [];
  const problems: Problem[] = [];
  if (Object.keys(raw.teams).length === 0)
    problems.push({
      path: ['teams'],
      rule: 'must name at least one team (a policy without teams grants nothing)',
    });
  for (const [team, value] of Object.entries(raw.teams)) {
    const rule = teamNameRule(team);
    if (rule !== undefined) problems.push({ path: ['teams', team], rule: `team name ${rule}` });
    if (looksLikeOneGrant(value))
      problems.push({
        path: ['teams', team],
        rule: `${teamShapeRule}; this looks like one grant: write it as a list item (- { namespace: … })`,
      });
    const grants = Array.isArray(value) ? value : isRecord(value) ? value.grants : undefined;
    if (!Array.isArray(grants)) continue;
    const base = grantsPathOf(raw, team);
    const seen = new Map<string, number>();
    grants.forEach((grant: unknown, index) => {
      if (!isRecord(grant) || typeof grant.namespace !== 'string') return;
      const key =
        typeof grant.repository === 'string' ? `${grant.namespace}/${grant.repository}` : grant.namespace;
      const first = seen.get(key);
      if (first === undefined) seen.set(key, index);
      else
        problems.push({
          path: [...base, index],
          rule: `duplicate target ${key} (also at ${formatPath([...base, first])}): ambiguous`,
        });
    });
  }
  return problems;
};

/** The fields allowed in the object at `path` (for "unknown field" messages). */
const allowedFieldsAt = (path: readonly PathSegment[]): readonly string[] => {
  if (path.length === 0) return rootFields;
  if (path[0] === 'identity') return identityFields;
  return path.length === 2 ? teamFields : grantFields;
};

/**
 * zod sees a list-form team as `{ grants: [...] }`; its problems are reported at the list itself,
 * as the file spells it.
 */
const filePath = (raw: unknown, path: PathSegment[]): PathSegment[] =>
  path[0] === 'teams' &&
  path[2] === 'grants' &&
  typeof path[1] === 'string' &&
  grantsPathOf(raw, path[1]).length === 2
    ? [path[0], path[1], ...path.slice(3)]
    : path;

const zodProblems = (issues: readonly z.core.$ZodIssue[], raw: unknown): Problem[] =>
  issues.flatMap((issue): Problem[] => {
    const path = issue.path.filter((s): s is PathSegment => typeof s !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      // Said once, better, by crossChecks.
      if (path.length === 2 && path[0] === 'teams' && isRecord(raw) && isRecord(raw.teams))
        if (looksLikeOneGrant(raw.teams[String(path[1])])) return [];
      const allowed = allowedFieldsAt(path);
      return issue.keys.map((key) => ({
        path: filePath(raw, [...path, key]),
        rule: `unknown field (allowed here: ${allowed.join(', ')})`,
      }));
    }
    return [{ path: filePath(raw, path), rule: issue.message }];
  });

const toTarget = (grant: z.output<typeof grantSchema>): Target =>
  grant.repository === undefined
    ? { kind: 'namespace', namespace: grant.namespace }
    : { kind: 'repo', namespace: grant.namespace, repository: grant.repository };

/** A policy's data, once the schema accepted it, as the rest of the code reads it. */
const policyOf = (data: z.output<typeof policySchema>, sourcePath: string): Policy => {
  // Team names are data: a null-prototype map keeps `teams.constructor` from meaning anything.
  const teams = Object.create(null) as Record<string, PolicyGrant[]>;
  const idpGroups = Object.create(null) as Record<string, string[]>;
  for (const [team, { grants, idpGroups: groups }] of Object.entries(data.teams)) {
    teams[team] = grants.map((grant) => ({
      target: toTarget(grant),
      permission: grant.permission,
      level: AuthLevels[grant.permission],
      exclusive: grant.exclusive,
    }));
    idpGroups[team] = [...new Set(groups ?? [team])];
  }
  const identity: IdentityMapping =
    data.identity === undefined
      ? { ...defaultIdentity }
      : {
          source: data.identity.iamName.source,
          ...(data.identity.iamName.attribute === undefined
            ? {}
            : { attribute: data.identity.iamName.attribute }),
          lowercase: data.identity.lowercase,
        };
  return {
    version: 1,
    sourcePath,
    protectedUsers: [...new Set(data.protectedUsers)],
    managedNamespaces: [...new Set(data.managedNamespaces)],
    teams,
    idpGroups,
    identity,
  };
};

/**
 * Checks a policy document already read into plain data (from YAML or JSON): the policy, or every
 * problem with its path in the document (lib/core/policy-yaml.ts turns paths into file:line:col).
 *
 * @example const { policy, problems } = checkPolicyDocument(JSON.parse(text), 'policy.json');
 */
const checkPolicyDocument = (
  raw: unknown,
  sourcePath: string,
): { policy: Policy; problems: [] } | { policy: undefined; problems: Problem[] } => {
  const parsed = policySchema.safeParse(raw);
  const problems = [...(parsed.success ? [] : zodProblems(parsed.error.issues, raw)), ...crossChecks(raw)];
  if (problems.length > 0 || !parsed.success) return { policy: undefined, problems };
  return { policy: policyOf(parsed.data, sourcePath), problems: [] };
};

/**
 * The policy of a text that is plain JSON (no duplicate key) and valid; `undefined` for anything
 * else, which the YAML reader then reads or refuses with file:line:col. The packaged policy is
 * JSON compiled at package time (lib/deploy/compile-policy.ts), so a cold start needs no YAML parser.
 */
const validPlainJsonPolicy = (text: string, sourcePath: string): Policy | undefined => {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || hasDuplicateKeys(text)) return undefined;
  return checkPolicyDocument(raw, sourcePath).policy;
};

/**
 * Parses a policy (YAML or JSON). Throws `ConfigError` (code POLICY) listing every problem as
 * `<file>:<line>:<column>: <yaml path>: <rule>`. A valid JSON policy is read without the YAML
 * parser; anything else loads it (lib/core/policy-yaml.ts, a chunk of its own in the bundles) and
 * gets its messages, so JSON and YAML are refused with the same words.
 *
 * @example const policy = await parsePolicyText(await readFile(path, 'utf8'), path);
 */
const parsePolicyText = async (text: string, sourcePath: string): Promise<Policy> => {
  const policy = validPlainJsonPolicy(text, sourcePath);
  if (policy !== undefined) return policy;
  const { parsePolicy } = await import('./policy-yaml.ts');
  return parsePolicy(text, sourcePath);
};

/**
 * Reads and parses a policy file; an unreadable file is a `ConfigError` (code POLICY) too.
 *
 * @example const policy = await loadPolicyFile(process.env.POLICY_FILE);
 */
const loadPolicyFile = async (path: string): Promise<Policy> => {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'read failed';
    throw new ConfigError(`cannot read access policy ${path} (${code})`, [], ErrorCodes.policy, {
      cause: error,
    });
  }
  return parsePolicyText(text, path);
};

/**
 * A `PolicyLoader` over one file. The file ships inside the function package and does not change
 * while an instance lives, so the first successful load is kept; a failed load is not kept.
 *
 * @example
 * const policyLoader = createFilePolicyLoader(config.policyFile); // module scope
 * const policy = await policyLoader.load();                       // per invocation
 */
const createFilePolicyLoader = (path: string): PolicyLoader => {
  let loaded: Promise<Policy> | undefined;
  return {
    load() {
      if (loaded === undefined) {
        loaded = loadPolicyFile(path);
        loaded.catch(() => {
          loaded = undefined;
        });
      }
      return loaded;
    },
  };
};

/** @example isKnownTeam(policy, 'platform') // true */
const isKnownTeam = (policy: Policy, team: string): boolean => Object.hasOwn(policy.teams, team);

const kindOrder = { namespace: 0, repo: 1 } as const;

/**
 * Every target any team names, once each, sorted by kind (namespaces first) then key.
 *
 * @example allPolicyTargets(policy) // [{ kind: 'namespace', namespace: 'tools' }, { kind: 'repo', … }]
 */
const allPolicyTargets = (policy: Policy): Target[] => {
  const byKey = new Map<string, Target>();
  for (const grants of Object.values(policy.teams))
    for (const { target } of grants) byKey.set(`${target.kind}:${targetKey(target)}`, target);
  return [...byKey.values()].sort(
    (a, b) => kindOrder[a.kind] - kindOrder[b.kind] || (targetKey(a) < targetKey(b) ? -1 : 1),
  );
};

/**
 * How the policy maps IdP users to IAM users; the default when the policy has no `identity` block.
 *
 * @example identityOf(policy) // { source: 'emailLocalPart', lowercase: true }
 */
const identityOf = (policy: Policy): IdentityMapping => policy.identity ?? defaultIdentity;

/** Group names compare as people read them: case and surrounding spaces do not matter. */
const groupKey = (name: string): string => name.trim().toLowerCase();

/**
 * The teams whose members an identity-provider group's members are, by the group's display name:
 * every team that lists it in `idpGroups`, or, for teams without the list, the team of that name.
 * Empty for a group the policy does not know (recorded by the intake, never granted).
 *
 * @example teamsOfIdpGroup(policy, 'Platform Engineers') // ['platform', 'sre']
 */
const teamsOfIdpGroup = (policy: Policy, groupName: string): string[] => {
  const key = groupKey(groupName);
  const teams: string[] = [];
  for (const team of Object.keys(policy.teams)) {
    const groups =
      policy.idpGroups !== undefined && Object.hasOwn(policy.idpGroups, team)
        ? (policy.idpGroups[team] ?? [team])
        : [team];
    if (groups.some((group) => groupKey(group) === key)) teams.push(team);
  }
  return teams.sort();
};

/**
 * The IdP group names that give a team (what `teamsOfIdpGroup` matches for it).
 *
 * @example idpGroupsOfTeam(policy, 'sre') // ['SRE', 'Site Reliability']
 */
const idpGroupsOfTeam = (policy: Policy, team: string): string[] => {
  if (!Object.hasOwn(policy.teams, team)) return [];
  return policy.idpGroups !== undefined && Object.hasOwn(policy.idpGroups, team)
    ? [...(policy.idpGroups[team] ?? [team])]
    : [team];
};

export { grantsOfTeam } from './desired.ts';
export type { PathSegment, PolicyLoader, Problem };
export {
  allPolicyTargets,
  checkPolicyDocument,
  createFilePolicyLoader,
  formatPath,
  groupKey,
  identityOf,
  idpGroupsOfTeam,
  isKnownTeam,
  loadPolicyFile,
  parsePolicyText,
  teamsOfIdpGroup,
};

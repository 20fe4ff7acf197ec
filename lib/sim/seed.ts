/**
 * The simulator's starting world: one account (domain) and project, the service account that
 * calls the API, other IAM users, AK/SK credentials, agencies, namespaces with repositories and
 * the grants that already exist. Validated with zod so a broken seed fails at start, naming
 * every problem, instead of surfacing as odd HTTP answers later.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as z from 'zod';
import { SimulatorConfigError } from './errors.ts';
import { namespaceProblem, repositoryProblem } from './names.ts';

const hex32 = z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lowercase hexadecimal characters');

const level = z.union([z.literal(1), z.literal(3), z.literal(7)]);

const nameOf = (rule: (value: unknown) => string | undefined) =>
  z.string().superRefine((value, ctx) => {
    const broken = rule(value);
    if (broken !== undefined) ctx.addIssue({ code: 'custom', message: broken });
  });

const grantSchema = z.strictObject({ userId: hex32, auth: level });

const repositorySchema = z.strictObject({
  name: nameOf(repositoryProblem),
  category: z.string().min(1).optional(),
  description: z.string().optional(),
  grants: z.array(grantSchema).optional(),
});

const namespaceSchema = z.strictObject({
  name: nameOf(namespaceProblem),
  grants: z.array(grantSchema).optional(),
  repositories: z.array(repositorySchema),
});

const seedSchema = z
  .strictObject({
    description: z.string().optional(),
    account: z.strictObject({ name: z.string().min(1), id: hex32 }),
    project: z.strictObject({ name: z.string().min(1), id: hex32 }),
    serviceAccount: z.strictObject({
      id: hex32,
      name: z.string().min(1),
      password: z.string().min(1),
      /** A token that is always accepted and never expires (demos, curl). */
      staticToken: z.string().min(16).optional(),
    }),
    users: z.array(z.strictObject({ id: hex32, name: z.string().min(1), enabled: z.boolean().optional() })),
    credentials: z
      .array(
        z.strictObject({
          ak: z.string().min(1),
          sk: z.string().min(1),
          userId: hex32,
          /** When set, requests must carry it as `X-Security-Token` (temporary credentials). */
          securityToken: z.string().min(1).optional(),
        }),
      )
      .optional(),
    agencies: z.array(z.strictObject({ domain: z.string().min(1), name: z.string().min(1) })).optional(),
    namespaces: z.array(namespaceSchema),
  })
  .superRefine((seed, ctx) => {
    const problem = (path: PropertyKey[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    // Two users may share a name (IAM allows it across federation and re-creation); never an id.
    const ids = new Set<string>([seed.serviceAccount.id]);
    seed.users.forEach((user, i) => {
      if (ids.has(user.id)) problem(['users', i, 'id'], `duplicate user id ${user.id}`);
      ids.add(user.id);
    });
    const aks = new Set<string>();
    (seed.credentials ?? []).forEach((credential, i) => {
      if (aks.has(credential.ak)) problem(['credentials', i, 'ak'], 'duplicate access key');
      aks.add(credential.ak);
      if (!ids.has(credential.userId)) problem(['credentials', i, 'userId'], 'owner is not a known user');
    });
    const checkGrants = (grants: Array<{ userId: string }> | undefined, path: PropertyKey[]) => {
      const seen = new Set<string>();
      (grants ?? []).forEach((grant, i) => {
        if (grant.userId === seed.serviceAccount.id)
          problem([...path, i, 'userId'], 'the service account is implicitly manager: do not grant it');
        else if (!ids.has(grant.userId)) problem([...path, i, 'userId'], `unknown user ${grant.userId}`);
        if (seen.has(grant.userId)) problem([...path, i, 'userId'], `user ${grant.userId} granted twice`);
        seen.add(grant.userId);
      });
    };
    const namespaces = new Set<string>();
    seed.namespaces.forEach((namespace, n) => {
      if (namespaces.has(namespace.name)) problem(['namespaces', n, 'name'], 'duplicate namespace');
      namespaces.add(namespace.name);
      checkGrants(namespace.grants, ['namespaces', n, 'grants']);
      const repositories = new Set<string>();
      namespace.repositories.forEach((repository, r) => {
        const path = ['namespaces', n, 'repositories', r];
        if (repositories.has(repository.name)) problem([...path, 'name'], 'duplicate repository');
        repositories.add(repository.name);
        checkGrants(repository.grants, [...path, 'grants']);
      });
    });
  });

type SimulatorSeed = z.infer<typeof seedSchema>;

/** Where the demo seed lives, whatever the working directory. */
const demoSeedPath = fileURLToPath(new URL('../../config/demo-seed.json', import.meta.url));

/**
 * Validates a seed value; throws a SimulatorConfigError listing every problem.
 *
 * @example const seed = parseSeed(JSON.parse(text));
 */
const parseSeed = (value: unknown): SimulatorSeed => {
  const parsed = seedSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new SimulatorConfigError(
    'invalid simulator seed',
    parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`),
  );
};

/**
 * Reads and validates a seed file (JSON). Starts nothing.
 *
 * @example const seed = loadSeed('config/demo-seed.json');
 */
const loadSeed = (path: string = demoSeedPath): SimulatorSeed => {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SimulatorConfigError(`cannot read simulator seed ${path}`, [], { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new SimulatorConfigError(`simulator seed ${path} is not JSON`, [], { cause: error });
  }
  return parseSeed(value);
};

export type { SimulatorSeed };
export { demoSeedPath, loadSeed, parseSeed };

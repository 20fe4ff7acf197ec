/**
 * The IAM endpoints: token issuance (password, assume_role) and user look-ups. IAM errors use
 * the flat `{error_code, error_msg}` shape; the IAM codes are the simulator's own.
 */
import { timingSafeEqual } from 'node:crypto';
import type { HandlerDeps, HandlerInput, SimRoute } from './context.ts';
import { ErrorShapes, type Failure, failure, isFailure, type Reply } from './replies.ts';
import type { SimUser } from './world.ts';

const badRequest = (message: string): Failure => failure(400, 'IAM.0011', message, ErrorShapes.flat);
const wrongCredentials = (): Failure =>
  failure(401, 'IAM.0002', 'incorrect IAM user name or password', ErrorShapes.flat);

type Json = Record<string, unknown>;

const object = (value: unknown): Json | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;

const text = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** The scope must name the seeded project (by name or id); a missing scope gives an unscoped token. */
const checkScope = (auth: Json, deps: HandlerDeps): Failure | undefined => {
  const scope = object(auth.scope);
  if (scope === undefined) return undefined;
  const project = object(scope.project);
  if (project === undefined) return badRequest('scope.project is required when scope is given');
  const { name, id } = deps.world.seed.project;
  if (project.name !== undefined && project.name !== name)
    return badRequest(`unknown project ${String(project.name)}`);
  if (project.id !== undefined && project.id !== id)
    return badRequest(`unknown project id ${String(project.id)}`);
  if (project.name === undefined && project.id === undefined)
    return badRequest('scope.project needs name or id');
  return undefined;
};

const domainMatches = (domain: Json | undefined, deps: HandlerDeps): boolean =>
  domain !== undefined &&
  (domain.name === deps.world.seed.account.name || domain.id === deps.world.seed.account.id);

const passwordIdentity = (identity: Json, deps: HandlerDeps): string | Failure => {
  const user = object(object(identity.password)?.user);
  const password = text(user?.password);
  if (user === undefined || password === undefined)
    return badRequest('identity.password.user with a password is required');
  if (!domainMatches(object(user.domain), deps)) return wrongCredentials();
  const sa = deps.world.seed.serviceAccount;
  const named = user.name === sa.name || user.id === sa.id;
  // Only the service account has a password in the seed; every other user fails the same way.
  return named && sameSecret(password, sa.password) ? sa.id : wrongCredentials();
};

const assumeRoleIdentity = (identity: Json, input: HandlerInput, deps: HandlerDeps): string | Failure => {
  const role = object(identity.assume_role);
  const domain = text(role?.domain_name);
  const agency = text(role?.agency_name) ?? text(role?.xrole_name);
  if (
    role === undefined ||
    agency === undefined ||
    (domain === undefined && text(role.domain_id) === undefined)
  )
    return badRequest(
      'identity.assume_role needs domain_name (or domain_id) and agency_name (or xrole_name)',
    );
  const delegate = deps.auth.authenticate(input, 'iam');
  if (isFailure(delegate)) return delegate;
  const account = deps.world.seed.account;
  const domainName = domain ?? (role.domain_id === account.id ? account.name : undefined);
  const allowed = (deps.world.seed.agencies ?? []).some((a) => a.domain === domainName && a.name === agency);
  if (!allowed || delegate !== deps.world.serviceAccountId)
    return failure(
      403,
      'IAM.0003',
      `agency ${agency} does not exist or may not be assumed`,
      ErrorShapes.flat,
    );
  return delegate;
};

const issueToken = (input: HandlerInput, deps: HandlerDeps): Reply | Failure => {
  const contentType = input.headers['content-type'];
  if (
    contentType === undefined ||
    !/^application\/json\s*(;\s*charset=utf-?8\s*)?$/i.test(contentType.trim())
  )
    return badRequest('Content-Type must be application/json;charset=utf8');
  let body: unknown;
  try {
    body = JSON.parse(input.body.toString('utf8'));
  } catch {
    return badRequest('request body is not valid JSON');
  }
  const auth = object(object(body)?.auth);
  const identity = object(auth?.identity);
  const methods = identity?.methods;
  if (auth === undefined || identity === undefined || !Array.isArray(methods))
    return badRequest('auth.identity.methods is required');
  const scopeProblem = checkScope(auth, deps);
  if (scopeProblem !== undefined) return scopeProblem;
  const userId = methods.includes('password')
    ? passwordIdentity(identity, deps)
    : methods.includes('assume_role')
      ? assumeRoleIdentity(identity, input, deps)
      : badRequest('methods must contain password or assume_role');
  if (isFailure(userId)) return userId;

  const method = methods.includes('password') ? 'password' : 'assume_role';
  const issued = deps.auth.issue(userId, [method]);
  const user = deps.world.users.get(userId);
  const { account, project } = deps.world.seed;
  const domain = { id: account.id, name: account.name };
  return {
    status: 201,
    headers: { 'X-Subject-Token': issued.token },
    body: {
      token: {
        methods: [method],
        issued_at: new Date(issued.issuedAt).toISOString(),
        expires_at: new Date(issued.expiresAt).toISOString(),
        user: { id: userId, name: user?.name ?? userId, domain },
        ...(auth.scope === undefined ? {} : { project: { id: project.id, name: project.name, domain } }),
        roles: [{ id: '0', name: 'te_admin' }],
        catalog: [],
      },
    },
  };
};

const userView = (user: SimUser, input: HandlerInput, deps: HandlerDeps) => ({
  id: user.id,
  name: user.name,
  enabled: user.enabled,
  domain_id: deps.world.seed.account.id,
  description: '',
  links: { self: `${input.origin}/v3/users/${user.id}` },
});

const showUser = (input: HandlerInput, deps: HandlerDeps): Reply | Failure => {
  const user = deps.world.users.get(input.params.id ?? '');
  // The documented IAM answer for a missing resource: `Could not find %(target)s: %(target_id)s.`
  if (user === undefined)
    return failure(404, 'IAM.0004', `Could not find user: ${input.params.id ?? ''}.`, ErrorShapes.flat);
  return { status: 200, body: { user: userView(user, input, deps) } };
};

const listUsers = (input: HandlerInput, deps: HandlerDeps): Reply | Failure => {
  const name = input.query.get('name');
  const domainId = input.query.get('domain_id');
  const users = [...deps.world.users.values()]
    .filter((u) => name === null || u.name === name)
    .filter(() => domainId === null || domainId === deps.world.seed.account.id)
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  return { status: 200, body: { users: users.map((u) => userView(u, input, deps)) } };
};

const iamRoutes: readonly SimRoute[] = [
  {
    method: 'POST',
    template: '/v3/auth/tokens',
    service: 'iam',
    authenticate: false,
    call: () => ({ method: 'POST', kind: 'iam', target: 'tokens' }),
    handle: issueToken,
  },
  {
    method: 'GET',
    template: '/v3/users/{id}',
    service: 'iam',
    authenticate: true,
    call: (p) => ({ method: 'GET', kind: 'iam', target: `users/${p.id ?? ''}` }),
    handle: showUser,
  },
  {
    method: 'GET',
    template: '/v3/users',
    service: 'iam',
    authenticate: true,
    call: (_, q) => ({ method: 'GET', kind: 'iam', target: `users?name=${q.get('name') ?? ''}` }),
    handle: listUsers,
  },
];

export { iamRoutes };

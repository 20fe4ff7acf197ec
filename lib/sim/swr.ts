/**
 * The SWR endpoints: repository and namespace permissions (GET/POST/PATCH/DELETE) and the
 * repository lists (v2 offset paging, the old packed `filter=` form, and v3 markers).
 */
import type { AuthLevel, Target, UserAuth } from '../domain.ts';
import { changeAll, grantAll, revokeAll } from './access.ts';
import type { HandlerDeps, HandlerInput, SimRoute } from './context.ts';
import { namespaceProblem, repositoryProblem, userIdProblem, userNameProblem } from './names.ts';
import { type Failure, failure, isFailure, type Reply } from './replies.ts';
import type { Holdings, RepositoryRecord } from './world.ts';

const Codes = {
  invalidName: 'SVCSTG.SWR.4001091',
  invalidParameter: 'SVCSTG.SWR.4000014',
  invalidAuth: 'SVCSTG.SWR.4001065',
  invalidUserName: 'SVCSTG.SWR.4001066',
  invalidUserId: 'SVCSTG.SWR.4001067',
  selfGrant: 'SVCSTG.SWR.4030170',
  forbidden: 'SVCSTG.SWR.4039002',
} as const;

const badParameter = (message: string): Failure => failure(400, Codes.invalidParameter, message);

const contentTypeOk = (value: string | undefined): boolean =>
  value !== undefined && /^application\/json\s*(;\s*charset=utf-?8\s*)?$/i.test(value.trim());

const targetOf = (params: Record<string, string>): Target | Failure => {
  const namespace = params.ns ?? '';
  const nsBroken = namespaceProblem(namespace);
  if (nsBroken !== undefined) return failure(400, Codes.invalidName, `invalid namespace: ${nsBroken}`);
  if (params.repo === undefined) return { kind: 'namespace', namespace };
  // `$` stands for `/` in the path (seed 000/002).
  const repository = params.repo.replaceAll('$', '/');
  const repoBroken = repositoryProblem(repository);
  if (repoBroken !== undefined) return failure(400, Codes.invalidName, `invalid repository: ${repoBroken}`);
  return { kind: 'repo', namespace, repository };
};

const parseJsonBody = (input: HandlerInput): unknown[] | Failure => {
  const contentType = input.headers['content-type'];
  if (!contentTypeOk(contentType))
    return badParameter('Content-Type must be application/json (optionally ;charset=utf-8)');
  let value: unknown;
  try {
    value = JSON.parse(input.body.toString('utf8'));
  } catch {
    return badParameter('request body is not valid JSON');
  }
  if (!Array.isArray(value) || value.length === 0)
    return badParameter('request body must be a non-empty array');
  return value;
};

const parseUserAuths = (items: unknown[]): UserAuth[] | Failure => {
  const users: UserAuth[] = [];
  const seen = new Set<string>();
  for (const [i, item] of items.entries()) {
    if (typeof item !== 'object' || item === null || Array.isArray(item))
      return badParameter(`item ${i} must be an object {user_id, user_name, auth}`);
    const { user_id: userId, user_name: userName, auth } = item as Record<string, unknown>;
    const idProblem = userIdProblem(userId);
    if (idProblem !== undefined) return failure(400, Codes.invalidUserId, `item ${i}: ${idProblem}`);
    const nameProblem = userNameProblem(userName);
    if (nameProblem !== undefined) return failure(400, Codes.invalidUserName, `item ${i}: ${nameProblem}`);
    if (auth !== 1 && auth !== 3 && auth !== 7)
      return failure(400, Codes.invalidAuth, `item ${i}: auth must be 7 (manage), 3 (write) or 1 (read)`);
    if (seen.has(userId as string)) return badParameter(`item ${i}: user_id ${userId} appears twice`);
    seen.add(userId as string);
    users.push({ user_id: userId as string, user_name: userName as string, auth: auth as AuthLevel });
  }
  return users;
};

/**
 * What SWR checks against IAM before granting: the user must exist, and (strict names) the name
 * sent must be IAM's current name for that id. The whole array fails for one bad user.
 */
const iamProblem = (users: UserAuth[], deps: HandlerDeps): Failure | undefined => {
  for (const user of users) {
    const known = deps.world.users.get(user.user_id);
    if (known === undefined) return failure(400, Codes.invalidUserId, `IAM has no user ${user.user_id}`);
    if (deps.strictUserNames && known.name !== user.user_name)
      return failure(
        400,
        Codes.invalidUserName,
        `user_name ${JSON.stringify(user.user_name)} is not the IAM name of user ${user.user_id}`,
      );
  }
  return undefined;
};

const parseUserIds = (items: unknown[]): string[] | Failure => {
  const seen = new Set<string>();
  for (const [i, item] of items.entries()) {
    const broken = userIdProblem(item);
    if (broken !== undefined) return failure(400, Codes.invalidUserId, `item ${i}: ${broken}`);
    if (seen.has(item as string)) return badParameter(`item ${i}: user id ${item} appears twice`);
    seen.add(item as string);
  }
  return items as string[];
};

/** Seed 002: only users other than the caller, and only with namespace ≥ write or repository manage. */
const mayWrite = (deps: HandlerDeps, caller: string, target: Target): boolean => {
  if (target.kind === 'namespace') return deps.world.levelOf(caller, target) === 7;
  const nsLevel = deps.world.levelOf(caller, { kind: 'namespace', namespace: target.namespace });
  return nsLevel >= 3 || deps.world.levelOf(caller, target) === 7;
};

const forbidden = (target: Target): Failure =>
  failure(403, Codes.forbidden, `the caller may not change permissions of ${target.namespace}`);

const selfRefused = (): Failure =>
  failure(403, Codes.selfGrant, 'the caller cannot grant, change or revoke its own permission');

const sortedOthers = (holdings: Holdings, caller: string): UserAuth[] =>
  [...holdings]
    .filter(([id]) => id !== caller)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([id, h]) => ({ user_id: id, user_name: h.userName, auth: h.auth }));

const getAccess = (
  target: Target,
  holdings: Holdings,
  input: HandlerInput,
  deps: HandlerDeps,
): Reply | Failure => {
  const level = deps.world.levelOf(input.caller, target);
  if (level === 0) return failure(403, Codes.forbidden, 'the caller has no permission here');
  const record = deps.world.record(target);
  const caller = deps.world.users.get(input.caller);
  const body: Record<string, unknown> = {
    id: record?.id,
    name: target.kind === 'repo' ? target.repository : target.namespace,
    ...(target.kind === 'namespace' ? { creator_name: deps.world.seed.serviceAccount.name } : {}),
    self_auth: { user_id: input.caller, user_name: caller?.name ?? input.caller, auth: level },
    others_auths: sortedOthers(holdings, input.caller),
  };
  return { status: 200, body };
};

const access = (input: HandlerInput, deps: HandlerDeps): Reply | Failure => {
  const target = targetOf(input.params);
  if (isFailure(target)) return target;
  let items: unknown[] = [];
  if (input.method !== 'GET') {
    const parsed = parseJsonBody(input);
    if (isFailure(parsed)) return parsed;
    items = parsed;
  }
  const holdings = deps.world.holdings(target);
  if (isFailure(holdings)) return holdings;
  if (input.method === 'GET') return getAccess(target, holdings, input, deps);
  if (!mayWrite(deps, input.caller, target)) return forbidden(target);

  if (input.method === 'DELETE') {
    const ids = parseUserIds(items);
    if (isFailure(ids)) return ids;
    if (ids.includes(input.caller)) return selfRefused();
    return revokeAll(holdings, target, ids, deps.revokeMissing) ?? { status: 204 };
  }
  const users = parseUserAuths(items);
  if (isFailure(users)) return users;
  if (users.some((u) => u.user_id === input.caller)) return selfRefused();
  const refused = iamProblem(users, deps);
  if (refused !== undefined) return refused;
  if (input.method === 'POST')
    return grantAll(holdings, target, users) ?? { status: target.kind === 'repo' ? 201 : 200 };
  return changeAll(holdings, target, users) ?? { status: 201 };
};

interface ListQuery {
  namespace: string | undefined;
  offset: number;
  limit: number;
}

const integer = (
  value: string | null | undefined,
  name: string,
  min: number,
  max: number,
): number | Failure => {
  if (value === null || value === undefined) return Number.NaN;
  if (!/^\d{1,9}$/.test(value)) return badParameter(`${name} must be an integer`);
  const n = Number(value);
  return n < min || n > max ? badParameter(`${name} must be between ${min} and ${max}`) : n;
};

/** Reads namespace/offset/limit from plain parameters, or from the packed `filter=a::b|c::d` form. */
const listQuery = (query: URLSearchParams, offsetName: string): ListQuery | Failure => {
  const packed = query.get('filter');
  const fields = new Map<string, string>();
  if (packed !== null)
    for (const pair of packed.split('|')) {
      const [key, value] = pair.split('::');
      if (key !== undefined && value !== undefined) fields.set(key, value);
    }
  const read = (name: string) => (packed !== null ? fields.get(name) : (query.get(name) ?? undefined));
  const namespace = read('namespace');
  if (namespace !== undefined && namespaceProblem(namespace) !== undefined)
    return failure(400, Codes.invalidName, `invalid namespace: ${namespaceProblem(namespace)}`);
  const offset = integer(read(offsetName), offsetName, 0, 1_000_000_000);
  if (isFailure(offset)) return offset;
  const limit = integer(read('limit'), 'limit', 1, 1000);
  if (isFailure(limit)) return limit;
  return {
    namespace,
    offset: Number.isNaN(offset) ? 0 : offset,
    limit: Number.isNaN(limit) ? 100 : limit,
  };
};

/** Every repository the caller can see, sorted by namespace then name. */
const visibleRepositories = (
  deps: HandlerDeps,
  caller: string,
  namespace: string | undefined,
): RepositoryRecord[] => {
  const out: RepositoryRecord[] = [];
  for (const ns of deps.world.namespaces.values()) {
    if (namespace !== undefined && ns.name !== namespace) continue;
    for (const repo of ns.repositories.values())
      if (deps.world.levelOf(caller, { kind: 'repo', namespace: ns.name, repository: repo.name }) > 0)
        out.push(repo);
  }
  return out.sort((a, b) =>
    a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1,
  );
};

const repositoryView = (repo: RepositoryRecord, deps: HandlerDeps, total: number) => {
  const path = `swr.${deps.world.seed.project.name}.myhuaweicloud.com/${repo.namespace}/${repo.name}`;
  return {
    id: repo.id,
    name: repo.name,
    namespace: repo.namespace,
    category: repo.category,
    description: repo.description,
    size: 0,
    is_public: false,
    num_images: 0,
    num_download: 0,
    url: '',
    path,
    internal_path: path.replace('swr.', 'swr-internal.'),
    domain_name: deps.world.seed.account.name,
    created_at: repo.createdAt,
    updated_at: repo.createdAt,
    status: false,
    total_range: total,
    tags: [],
  };
};

const listV2 = (input: HandlerInput, deps: HandlerDeps): Reply | Failure => {
  const q = listQuery(input.query, 'offset');
  if (isFailure(q)) return q;
  const all = visibleRepositories(deps, input.caller, q.namespace);
  const page = all.slice(q.offset, q.offset + q.limit);
  const last = page.length === 0 ? q.offset : q.offset + page.length - 1;
  return {
    status: 200,
    body: page.map((repo) => repositoryView(repo, deps, all.length)),
    headers: { 'Content-Range': `${q.offset}-${last}/${all.length}` },
  };
};

const listV3 = (input: HandlerInput, deps: HandlerDeps): Reply | Failure => {
  const q = listQuery(input.query, 'marker');
  if (isFailure(q)) return q;
  const all = visibleRepositories(deps, input.caller, q.namespace);
  const page = all.slice(q.offset, q.offset + q.limit);
  const next = q.offset + page.length;
  const repos = page.map((repo) => repositoryView(repo, deps, all.length));
  return { status: 200, body: next < all.length ? { nextMarker: next, repos } : { repos } };
};

const repoAccess = '/v2/manage/namespaces/{ns}/repos/{repo}/access';
const namespaceAccess = '/v2/manage/namespaces/{ns}/access';

const repoTargetKey = (p: Record<string, string>) => `${p.ns ?? ''}/${(p.repo ?? '').replaceAll('$', '/')}`;

const swrRoutes: readonly SimRoute[] = [
  ...(['GET', 'POST', 'PATCH', 'DELETE'] as const).flatMap((method): SimRoute[] => [
    {
      method,
      template: repoAccess,
      service: 'swr',
      authenticate: true,
      call: (p) => ({ method, kind: 'repo', target: repoTargetKey(p) }),
      handle: access,
    },
    {
      method,
      template: namespaceAccess,
      service: 'swr',
      authenticate: true,
      call: (p) => ({ method, kind: 'namespace', target: p.ns ?? '' }),
      handle: access,
    },
  ]),
  {
    method: 'GET',
    template: '/v2/manage/repos',
    service: 'swr',
    authenticate: true,
    call: (_, q) => ({ method: 'GET', kind: 'list', target: q.get('namespace') ?? '' }),
    handle: listV2,
  },
  {
    method: 'GET',
    template: '/v3/manage/repos',
    service: 'swr',
    authenticate: true,
    call: (_, q) => ({ method: 'GET', kind: 'list', target: q.get('namespace') ?? '' }),
    handle: listV3,
  },
];

export { swrRoutes };

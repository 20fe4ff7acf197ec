/**
 * The SCIM 2.0 service provider: one function from a request (method, path under `/scim/v2`,
 * query, body) to an answer, over the SCIM state and the effects. Authentication happens before
 * (lib/intake/handler.ts); every failure here is a SCIM error body with its status.
 */
import { identityOf } from '../../core/policy.ts';
import { isRetryable, SyncError } from '../../errors.ts';
import { redactSecrets } from '../../redact.ts';
import { mappedIamName, resolveIamUser } from '../identity.ts';
import { discoveryDocument } from './discovery.ts';
import { createScimEffects, type ScimDeps } from './effects.ts';
import { readFilter } from './filter.ts';
import { applyPatch, memberScope, normalizeMemberValues, readPatch } from './patch.ts';
import {
  attributeOf,
  type GroupInput,
  groupResource,
  isExcluded,
  isRecord,
  listResponse,
  pageOf,
  parseJsonBody,
  project,
  readGroup,
  readUser,
  ScimError,
  ScimTypes,
  scimErrorBody,
  Urns,
  type UserInput,
  userResource,
} from './protocol.ts';
import type { ScimGroupRecord, ScimUserRecord } from './state.ts';

interface ScimRequest {
  method: string;
  /** Path segments after `/scim/v2`, decoded: `['Users', '<id>']`. */
  segments: string[];
  query: Record<string, string | undefined>;
  body: string;
  /** `https://…/scim/v2`: where our resources live (meta.location). */
  baseUrl: string;
}

interface ScimReply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

const maxAttempts = 5;

const json = (status: number, body: unknown, headers?: Record<string, string>): ScimReply => ({
  status,
  body,
  ...(headers === undefined ? {} : { headers }),
});

const notFound = (what: string): ScimError => new ScimError(404, `${what} not found`);

const tooBusy = (): ScimError =>
  new ScimError(503, 'the resource changed under five attempts in a row; retry');

/**
 * @example
 * const scim = createScimService(deps);
 * const reply = await scim.handle({ method: 'GET', segments: ['Users'], query: { filter: 'userName eq "ann"' }, body: '', baseUrl });
 */
const createScimService = (deps: ScimDeps) => {
  const { store, policy } = deps;
  const effects = createScimEffects(deps);
  const now = () => deps.clock().toISOString();

  // ---- users ---------------------------------------------------------------------------------

  /** The IAM user for a user's attributes, now (an IAM that cannot be read propagates: 503). */
  const resolve = async (attributes: Record<string, unknown>) =>
    resolveIamUser(identityOf(policy), attributes, deps.directory);

  const createUser = async (request: ScimRequest): Promise<ScimReply> => {
    const input = readUser(parseJsonBody(request.body), { checkSchemas: true });
    const at = now();
    const resolution = await resolve(input.attributes);
    const record: ScimUserRecord = {
      id: deps.newId(),
      userName: input.userName,
      active: input.active,
      attributes: input.attributes,
      ...(resolution.kind === 'resolved' ? { iam: resolution.user } : { unmappedReason: resolution.reason }),
      created: at,
      lastModified: at,
      version: 1,
    };
    if ((await store.createUser(record)) === 'duplicate')
      throw new ScimError(409, 'a user with this userName already exists', ScimTypes.uniqueness);
    if (resolution.kind === 'unmapped') effects.reportUnmapped(record.id, resolution.reason);
    const resource = userResource(record, request.baseUrl);
    return json(201, resource, { Location: String((resource.meta as { location: string }).location) });
  };

  const liveUser = async (id: string): Promise<ScimUserRecord> => {
    const user = await store.getUser(id);
    if (user === undefined || user.deleted === true) throw notFound('User');
    return user;
  };

  const sameMapping = (before: Record<string, unknown>, after: Record<string, unknown>): boolean => {
    const a = mappedIamName(identityOf(policy), before);
    const b = mappedIamName(identityOf(policy), after);
    return a.ok === b.ok && (!a.ok || (b.ok && a.name === b.name));
  };

  /** Read, change, write over the version read (again on a lost race), then send the effects. */
  const updateUser = async (
    id: string,
    change: (current: ScimUserRecord) => UserInput,
  ): Promise<ScimUserRecord> => {
    const at = now();
    for (let attempt = 0; attempt < maxAttempts; attempt += 1) {
      const current = await liveUser(id);
      if (current.outbox !== undefined && current.outbox.length > 0) {
        // A change whose effects were not sent yet (the provider retries): send them first.
        await effects.flushUser(current);
        continue;
      }
      const input = change(current);
      const identityMoved = !sameMapping(current.attributes, input.attributes);
      let { iam, unmappedReason } = current;
      if (identityMoved || iam === undefined) {
        const resolution = await resolve(input.attributes);
        iam = resolution.kind === 'resolved' ? resolution.user : undefined;
        unmappedReason = resolution.kind === 'unmapped' ? resolution.reason : undefined;
        if (resolution.kind === 'unmapped' && identityMoved) effects.reportUnmapped(id, resolution.reason);
      }
      const next: ScimUserRecord = {
        id,
        userName: input.userName,
        active: input.active,
        attributes: input.attributes,
        ...(iam === undefined ? {} : { iam }),
        ...(unmappedReason === undefined ? {} : { unmappedReason }),
        created: current.created,
        lastModified: at,
        version: current.version + 1,
      };
      const events = await effects.userChangeEvents(current, next, at);
      if (events.length > 0) next.outbox = events;
      const saved = await store.saveUser(next, current.version, current.userName);
      if (saved === 'duplicate')
        throw new ScimError(409, 'a user with this userName already exists', ScimTypes.uniqueness);
      if (saved === 'conflict') continue;
      await effects.flushUser(next);
      return next;
    }
    throw tooBusy();
  };

  const patchUser = async (id: string, request: ScimRequest): Promise<ScimReply> => {
    const operations = readPatch(parseJsonBody(request.body));
    const updated = await updateUser(id, (current) => {
      const resource = { schemas: [Urns.user], id, ...current.attributes };
      const patched = applyPatch(resource, operations);
      if (patched.id !== id) throw new ScimError(400, 'id cannot be changed', ScimTypes.mutability);
      const { id: _id, schemas: _schemas, meta: _meta, ...attributes } = patched;
      return readUser(attributes, { checkSchemas: false });
    });
    return json(200, userResource(updated, request.baseUrl));
  };

  const replaceUser = async (id: string, request: ScimRequest): Promise<ScimReply> => {
    const body = parseJsonBody(request.body);
    const input = readUser(body, { checkSchemas: true });
    const sentId = isRecord(body) ? attributeOf(body, 'id') : undefined;
    if (sentId !== undefined && sentId !== id)
      throw new ScimError(400, 'id cannot be changed', ScimTypes.mutability);
    const updated = await updateUser(id, () => input);
    return json(200, userResource(updated, request.baseUrl));
  };

  const deleteUser = async (id: string): Promise<ScimReply> => {
    const at = now();
    for (let attempt = 0; attempt < maxAttempts; attempt += 1) {
      const current = await store.getUser(id);
      if (current === undefined) throw notFound('User');
      if (current.outbox !== undefined && current.outbox.length > 0) {
        await effects.flushUser(current);
        continue;
      }
      if (current.deleted !== true) {
        // Whoever the person maps to now is offboarded, even if no event named them before.
        const iam =
          current.iam ??
          (await resolve(current.attributes).then((resolution) =>
            resolution.kind === 'resolved' ? resolution.user : undefined,
          ));
        const next: ScimUserRecord = {
          ...current,
          deleted: true,
          lastModified: at,
          version: current.version + 1,
        };
        if (iam !== undefined) next.outbox = [effects.offboardingEvent(iam, at, ['user', id, 'delete'])];
        else effects.reportUnmapped(id, current.unmappedReason ?? 'no IAM user to offboard');
        const saved = await store.saveUser(next, current.version, current.userName);
        if (saved !== 'ok') continue;
        await effects.flushUser(next);
      }
      for (const groupId of await store.userGroupIds(id)) {
        await store.removeEdge(groupId, id);
        await store.removeUserGroup(id, groupId);
      }
      await store.removeUser(current);
      return { status: 204 };
    }
    throw tooBusy();
  };

  const listUsers = async (request: ScimRequest): Promise<ScimReply> => {
    const page = pageOf(request.query);
    const plan = request.query.filter === undefined ? undefined : readFilter(request.query.filter);
    let candidates: ScimUserRecord[];
    const lookup = plan?.lookup;
    if (lookup?.attribute === 'userName') {
      const id = await store.userIdByName(lookup.value);
      const user = id === undefined ? undefined : await store.getUser(id);
      candidates = user === undefined ? [] : [user];
    } else if (lookup?.attribute === 'id') {
      const user = await store.getUser(lookup.value);
      candidates = user === undefined ? [] : [user];
    } else candidates = await store.listUsers();
    const resources = candidates
      .filter((user) => user.deleted !== true)
      .map((user) => userResource(user, request.baseUrl))
      .filter((resource) => plan === undefined || plan.matches(resource))
      .map((resource) => project(resource, request.query));
    return json(200, listResponse(resources, page));
  };

  // ---- groups --------------------------------------------------------------------------------

  const memberIds = async (groupId: string): Promise<string[]> =>
    (await store.listEdges(groupId)).filter((edge) => edge.member).map((edge) => edge.userId);

  /** The group as it stands, a pending rename or delete settled first. */
  const liveGroup = async (id: string): Promise<ScimGroupRecord> => {
    const stored = await store.getGroup(id);
    const group = stored === undefined ? undefined : await effects.settleGroup(stored);
    if (group === undefined) throw notFound('Group');
    return group;
  };

  const createGroup = async (request: ScimRequest): Promise<ScimReply> => {
    const input = readGroup(parseJsonBody(request.body), { checkSchemas: true });
    const at = now();
    const record: ScimGroupRecord = {
      id: deps.newId(),
      displayName: input.displayName,
      ...(input.externalId === undefined ? {} : { externalId: input.externalId }),
      created: at,
      lastModified: at,
      version: 1,
    };
    if ((await store.createGroup(record)) === 'duplicate')
      throw new ScimError(409, 'a group with this displayName already exists', ScimTypes.uniqueness);
    const members = input.members ?? [];
    await effects.changeMembers(
      record,
      members.map((userId) => ({ userId, member: true })),
      at,
    );
    const resource = groupResource(record, request.baseUrl, members);
    return json(201, resource, { Location: String((resource.meta as { location: string }).location) });
  };

  /**
   * A group change: name and externalId first (a rename into other teams settles for every
   * member), then the membership difference, member by member. `members` undefined: unchanged.
   */
  const changeGroup = async (
    id: string,
    change: (group: ScimGroupRecord, scopedMembers: string[]) => GroupInput,
    scope: Set<string> | 'all',
  ): Promise<void> => {
    const at = now();
    for (let attempt = 0; attempt < maxAttempts; attempt += 1) {
      const group = await liveGroup(id);
      const edges =
        scope === 'all' ? await store.listEdges(id) : [...(await store.getEdges(id, [...scope])).values()];
      // Effects of an earlier attempt that were not sent (the provider retries): send them first.
      await effects.flushEdges(edges.filter((edge) => edge.outbox !== undefined && edge.outbox.length > 0));
      const before = edges.filter((edge) => edge.member).map((edge) => edge.userId);
      const input = change(group, before);
      let current = group;
      if (input.displayName !== group.displayName || input.externalId !== group.externalId) {
        const fromTeams = effects.teamsOfGroup(group);
        const next: ScimGroupRecord = {
          id,
          displayName: input.displayName,
          ...(input.externalId === undefined ? {} : { externalId: input.externalId }),
          created: group.created,
          lastModified: at,
          version: group.version + 1,
        };
        const toTeams = effects.teamsOfGroup(next);
        if (fromTeams.join('\u0000') !== toTeams.join('\u0000'))
          next.pending = { at, fromTeams, toTeams, deleting: false };
        const saved = await store.saveGroup(next, group.version, group.displayName);
        if (saved === 'duplicate')
          throw new ScimError(409, 'a group with this displayName already exists', ScimTypes.uniqueness);
        if (saved === 'conflict') continue;
        const settled = await effects.settleGroup(next);
        if (settled === undefined) throw notFound('Group');
        current = settled;
      }
      if (input.members !== undefined) {
        const after = new Set(input.members);
        const previous = new Set(before);
        await effects.changeMembers(
          current,
          [
            ...input.members
              .filter((userId) => !previous.has(userId))
              .map((userId) => ({ userId, member: true })),
            ...before.filter((userId) => !after.has(userId)).map((userId) => ({ userId, member: false })),
          ],
          at,
          new Map(edges.map((edge) => [edge.userId, edge])),
        );
      }
      return;
    }
    throw tooBusy();
  };

  const patchGroup = async (id: string, request: ScimRequest): Promise<ScimReply> => {
    const operations = normalizeMemberValues(readPatch(parseJsonBody(request.body)));
    await changeGroup(
      id,
      (group, members) => {
        const view = {
          schemas: [Urns.group],
          id,
          displayName: group.displayName,
          ...(group.externalId === undefined ? {} : { externalId: group.externalId }),
          members: members.map((value) => ({ value })),
        };
        const patched = applyPatch(view, operations);
        if (patched.id !== id) throw new ScimError(400, 'id cannot be changed', ScimTypes.mutability);
        const input = readGroup(patched, { checkSchemas: false });
        return { ...input, members: input.members ?? [] };
      },
      memberScope(operations),
    );
    return { status: 204 };
  };

  const replaceGroup = async (id: string, request: ScimRequest): Promise<ScimReply> => {
    const body = parseJsonBody(request.body);
    const input = readGroup(body, { checkSchemas: true });
    const sentId = isRecord(body) ? attributeOf(body, 'id') : undefined;
    if (sentId !== undefined && sentId !== id)
      throw new ScimError(400, 'id cannot be changed', ScimTypes.mutability);
    // Without `members` a PUT keeps them: clearing a group must be said, not implied.
    await changeGroup(id, () => input, input.members === undefined ? new Set() : 'all');
    const group = await liveGroup(id);
    return json(200, groupResource(group, request.baseUrl, await memberIds(id)));
  };

  const deleteGroup = async (id: string): Promise<ScimReply> => {
    const at = now();
    for (let attempt = 0; attempt < maxAttempts; attempt += 1) {
      const group = await liveGroup(id);
      const next: ScimGroupRecord = {
        ...group,
        lastModified: at,
        version: group.version + 1,
        pending: { at, fromTeams: effects.teamsOfGroup(group), toTeams: [], deleting: true },
      };
      if ((await store.saveGroup(next, group.version, group.displayName)) !== 'ok') continue;
      await effects.settleGroup(next);
      return { status: 204 };
    }
    throw tooBusy();
  };

  const getGroup = async (id: string, request: ScimRequest): Promise<ScimReply> => {
    const group = await liveGroup(id);
    const members = isExcluded(request.query, 'members') ? undefined : await memberIds(id);
    return json(200, project(groupResource(group, request.baseUrl, members), request.query));
  };

  const listGroups = async (request: ScimRequest): Promise<ScimReply> => {
    const page = pageOf(request.query);
    const plan = request.query.filter === undefined ? undefined : readFilter(request.query.filter);
    let candidates: ScimGroupRecord[];
    const lookup = plan?.lookup;
    if (lookup?.attribute === 'displayName') {
      const id = await store.groupIdByName(lookup.value);
      const group = id === undefined ? undefined : await store.getGroup(id);
      candidates = group === undefined ? [] : [group];
    } else if (lookup?.attribute === 'id') {
      const group = await store.getGroup(lookup.value);
      candidates = group === undefined ? [] : [group];
    } else candidates = await store.listGroups();
    const withMembers = plan?.readsMembers === true;
    const matched: ScimGroupRecord[] = [];
    for (const group of candidates) {
      if (plan === undefined) matched.push(group);
      else {
        const members = withMembers ? await memberIds(group.id) : undefined;
        if (plan.matches(groupResource(group, request.baseUrl, members))) matched.push(group);
      }
    }
    // Members are read for the page only, and only when asked for.
    const showMembers = !isExcluded(request.query, 'members');
    const pageGroups = matched.slice(page.startIndex - 1, page.startIndex - 1 + page.count);
    const shown = new Map<string, Record<string, unknown>>();
    for (const group of pageGroups)
      shown.set(
        group.id,
        project(
          groupResource(group, request.baseUrl, showMembers ? await memberIds(group.id) : undefined),
          request.query,
        ),
      );
    const resources = matched.map((group) => shown.get(group.id) ?? { id: group.id });
    return json(200, listResponse(resources, page));
  };

  // ---- routing -------------------------------------------------------------------------------

  const route = async (request: ScimRequest): Promise<ScimReply> => {
    const [collection, id, ...rest] = request.segments;
    const method = request.method.toUpperCase();
    if (collection === undefined) throw notFound('Resource');
    if (
      collection === 'ServiceProviderConfig' ||
      collection === 'Schemas' ||
      collection === 'ResourceTypes'
    ) {
      if (method !== 'GET') throw new ScimError(405, `${method} is not supported on ${collection}`);
      const document = discoveryDocument(request.segments);
      if (document === undefined) throw notFound('Resource');
      return json(200, document);
    }
    if (rest.length > 0 || (collection !== 'Users' && collection !== 'Groups')) throw notFound('Resource');
    const users = collection === 'Users';
    if (id === undefined) {
      if (method === 'GET') return users ? listUsers(request) : listGroups(request);
      if (method === 'POST') return users ? createUser(request) : createGroup(request);
      throw new ScimError(405, `${method} is not supported on /${collection}`);
    }
    switch (method) {
      case 'GET':
        return users
          ? json(200, project(userResource(await liveUser(id), request.baseUrl), request.query))
          : getGroup(id, request);
      case 'PUT':
        return users ? replaceUser(id, request) : replaceGroup(id, request);
      case 'PATCH':
        return users ? patchUser(id, request) : patchGroup(id, request);
      case 'DELETE':
        return users ? deleteUser(id) : deleteGroup(id);
      default:
        throw new ScimError(405, `${method} is not supported on /${collection}/{id}`);
    }
  };

  /** Never throws: every failure is a SCIM error answer (5xx for what retrying may cure). */
  const handle = async (request: ScimRequest): Promise<ScimReply> => {
    try {
      return await route(request);
    } catch (error) {
      if (error instanceof ScimError) {
        if (error.status >= 500)
          deps.log.error('intake: SCIM request failed', {
            method: request.method,
            resource: request.segments[0],
            status: error.status,
            reason: redactSecrets(error.message),
          });
        return json(error.status, scimErrorBody(error.status, error.scimType, error.message));
      }
      const retryable = isRetryable(error);
      deps.log.error('intake: SCIM request failed', {
        method: request.method,
        resource: request.segments[0],
        errorCode: error instanceof SyncError ? error.code : 'UNEXPECTED',
        reason: redactSecrets(error instanceof Error ? `${error.name}: ${error.message}` : String(error)),
      });
      const status = retryable ? 503 : 500;
      return json(
        status,
        scimErrorBody(status, undefined, retryable ? 'temporarily unavailable; retry' : 'internal error'),
      );
    }
  };

  return { handle };
};

type ScimService = ReturnType<typeof createScimService>;

export type { ScimReply, ScimRequest, ScimService };
export { createScimService };

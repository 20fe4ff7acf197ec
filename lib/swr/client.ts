/**
 * The SWR permission client (`SwrPermissionsPort`) over undici. Names are validated before any
 * URL is built; arrays go in one call per target and action; the "already exists" and
 * "permission missing" answers are resolved by reading the actual state (GET) and sending only
 * what is still needed, so every call is safe to repeat.
 */
import type { Dispatcher } from 'undici';
import {
  type CallOptions,
  type SwrPermissionsPort,
  type Target,
  type TargetAccess,
  targetKey,
  type UserAuth,
} from '../domain.ts';
import { InvalidNameError, SyncError } from '../errors.ts';
import * as z from '../zod.ts';
import { ClientErrorCodes, isExistsConflict, isMissingPermission, SwrApiError } from './api-errors.ts';
import type { AuthProvider } from './auth.ts';
import { assertEndpoint } from './endpoint.ts';
import {
  createPool,
  createTransport,
  defaultTimeouts,
  type HttpMethod,
  jsonBody,
  type RawResponse,
  type RequestEvent,
} from './http.ts';
import { assertAuthLevel, assertNamespace, assertUserId, assertUserName, encodeRepository } from './names.ts';
import type { RateLimiter } from './rate-limit.ts';
import { defaultRetryPolicy, type RetryEvent } from './retry.ts';
import { encodeQuery } from './signer.ts';

interface SwrClientOptions {
  /** `https://swr-api.{region}.myhuaweicloud.com` (http only on loopback). */
  endpoint: string;
  auth: AuthProvider;
  maxAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Longest `Retry-After` waited for inside the invocation. */
  maxRetryAfterMs?: number;
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Page size of `listRepositories` (SWR's default is 100). */
  pageSize?: number;
  /** A caller-owned dispatcher (e.g. undici MockAgent); `close()` leaves it open. */
  dispatcher?: Dispatcher;
  onRequest?: (event: RequestEvent) => void;
  onRetry?: (event: RetryEvent) => void;
  /** Taken before every request (retries included); none when absent. */
  rateLimiter?: RateLimiter;
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

interface SwrClient extends SwrPermissionsPort {
  /** Destroys the connection pool the client created. */
  close(): Promise<void>;
}

/** A repository listing that never ends is a broken server, not a big namespace. */
const maxPages = 10_000;

const levelSchema = z.union([z.literal(1), z.literal(3), z.literal(7)]);

/** One entry of `others_auths`: a string user_id and a documented level, or the read failed. */
const userAuthSchema = z.looseObject({
  user_id: z.string().check(z.minLength(1)),
  user_name: z.nullish(z.string()),
  auth: levelSchema,
});

/**
 * The documented GET answer. `others_auths` must be there and be an array: a body without it (a
 * proxy's JSON, a truncated or reshaped answer) is a failed read, never "nobody holds anything",
 * or the planner would grant everyone again and, worse, see nothing to revoke.
 */
const accessSchema = z.looseObject({
  // The caller; absent (or null) is tolerated: it only means no entry is known to be the caller's.
  self_auth: z.nullish(z.looseObject({ user_id: z.string().check(z.minLength(1)) })),
  others_auths: z.array(userAuthSchema),
});

/** The v2 listing: an array of repositories, each with a string name. */
const repoListSchema = z.array(z.looseObject({ name: z.string().check(z.minLength(1)) }));

const parseWith =
  <T>(schema: z.ZodMiniType<T>) =>
  (response: RawResponse): T => {
    const result = schema.safeParse(jsonBody(response));
    if (!result.success) throw new Error(z.prettifyError(result.error));
    return result.data;
  };

/** The access path of a target, after every part passed the SWR name rules. */
const accessPath = (target: Target): string => {
  const namespace = assertNamespace(target.namespace);
  return target.kind === 'repo'
    ? `/v2/manage/namespaces/${namespace}/repos/${encodeRepository(target.repository)}/access`
    : `/v2/manage/namespaces/${namespace}/access`;
};

/** The wire body: exactly the three fields, each checked. */
const toBody = (users: readonly UserAuth[]): UserAuth[] => {
  const seen = new Set<string>();
  return users.map((user) => {
    const userId = assertUserId(user.user_id);
    if (seen.has(userId)) throw new InvalidNameError('users', `${JSON.stringify(userId)} is listed twice`);
    seen.add(userId);
    return { user_id: userId, user_name: assertUserName(user.user_name), auth: assertAuthLevel(user.auth) };
  });
};

const heldLevels = (access: TargetAccess): Map<string, number> =>
  new Map(access.users.map((user) => [user.user_id, user.auth]));

/**
 * A write's 2xx body must be empty or JSON (SWR documents none). An HTML page or other text means
 * something else answered (a proxy, a captive portal): the write may not have happened, so it is
 * a failed call (INVALID_RESPONSE, retryable), never a success.
 */
const writeBody = (response: RawResponse): undefined => {
  jsonBody(response);
  return undefined;
};

/**
 * The undici SWR client.
 *
 * @example
 * const swr = createSwrClient({ endpoint: 'https://swr-api.ap-southeast-1.myhuaweicloud.com', auth });
 * const target = { kind: 'repo', namespace: 'core', repository: 'team/api' } as const;
 * await swr.grant(target, [{ user_id, user_name: 'alice', auth: 3 }], { deadline });
 * await swr.close();
 */
const createSwrClient = (options: SwrClientOptions): SwrClient => {
  const origin = assertEndpoint(options.endpoint, 'SWR endpoint');
  const timeouts = {
    ...defaultTimeouts,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
  };
  const ownedPool = options.dispatcher === undefined ? createPool(origin, timeouts) : undefined;
  const pageSize = Math.max(1, Math.min(1000, Math.floor(options.pageSize ?? 100)));
  const transport = createTransport({
    service: 'SWR',
    endpoint: origin,
    auth: options.auth,
    dispatcher: options.dispatcher ?? (ownedPool as Dispatcher),
    retry: {
      maxAttempts: options.maxAttempts ?? defaultRetryPolicy.maxAttempts,
      baseDelayMs: options.baseDelayMs ?? defaultRetryPolicy.baseDelayMs,
      maxDelayMs: options.maxDelayMs ?? defaultRetryPolicy.maxDelayMs,
      maxRetryAfterMs: options.maxRetryAfterMs ?? defaultRetryPolicy.maxRetryAfterMs,
    },
    timeouts,
    clock: {
      ...(options.now === undefined ? {} : { now: options.now }),
      ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
      ...(options.random === undefined ? {} : { random: options.random }),
    },
    onRequest: options.onRequest,
    onRetry: options.onRetry,
    rateLimiter: options.rateLimiter,
  });

  const send = (
    method: HttpMethod,
    path: string,
    body: unknown,
    target: string,
    callOptions: CallOptions | undefined,
  ): Promise<undefined> => transport.call({ method, path, body, target, parse: writeBody }, callOptions);

  const getAccess = async (target: Target, callOptions?: CallOptions): Promise<TargetAccess> => {
    const path = accessPath(target);
    const access = await transport.call(
      { method: 'GET', path, target: targetKey(target), parse: parseWith(accessSchema) },
      callOptions,
    );
    return {
      selfUserId: access.self_auth?.user_id ?? undefined,
      users: access.others_auths.map((user) => ({
        user_id: user.user_id,
        user_name: user.user_name ?? '',
        auth: user.auth,
      })),
    };
  };

  /**
   * The same conflict again after re-reading means another writer (a concurrent invocation for the
   * same user) moved the permission in between: transient, so SQS retries the message and it is
   * planned again from a fresh read, instead of dead-lettering a good message.
   */
  const raced = (error: unknown, key: string): unknown =>
    isExistsConflict(error) || isMissingPermission(error)
      ? new SyncError(`${error.message} (the permission changed while it was being written)`, {
          code: error.code,
          retryable: true,
          target: key,
          cause: error,
        })
      : error;

  const grant = async (target: Target, users: UserAuth[], callOptions?: CallOptions): Promise<void> => {
    const path = accessPath(target);
    const body = toBody(users);
    if (body.length === 0) return;
    const key = targetKey(target);
    try {
      await send('POST', path, body, key, callOptions);
    } catch (error) {
      if (!isExistsConflict(error)) throw error;
      // Some of the users hold a permission already: change those, add the others, once.
      const held = heldLevels(await getAccess(target, callOptions));
      const toChange = body.filter((user) => held.has(user.user_id) && held.get(user.user_id) !== user.auth);
      const toAdd = body.filter((user) => !held.has(user.user_id));
      try {
        if (toChange.length > 0) await send('PATCH', path, toChange, key, callOptions);
        if (toAdd.length > 0) await send('POST', path, toAdd, key, callOptions);
      } catch (again) {
        throw raced(again, key);
      }
    }
  };

  const change = async (target: Target, users: UserAuth[], callOptions?: CallOptions): Promise<void> => {
    const path = accessPath(target);
    const body = toBody(users);
    if (body.length === 0) return;
    const key = targetKey(target);
    try {
      await send('PATCH', path, body, key, callOptions);
    } catch (error) {
      if (!isMissingPermission(error)) throw error;
      // Someone in the array holds nothing to change: add those, change the rest, once.
      const held = heldLevels(await getAccess(target, callOptions));
      const toAdd = body.filter((user) => !held.has(user.user_id));
      const toChange = body.filter((user) => held.has(user.user_id) && held.get(user.user_id) !== user.auth);
      try {
        if (toAdd.length > 0) await send('POST', path, toAdd, key, callOptions);
        if (toChange.length > 0) await send('PATCH', path, toChange, key, callOptions);
      } catch (again) {
        throw raced(again, key);
      }
    }
  };

  const revoke = async (target: Target, userIds: string[], callOptions?: CallOptions): Promise<void> => {
    const path = accessPath(target);
    const ids = [...new Set(userIds.map((id) => assertUserId(id)))];
    if (ids.length === 0) return;
    const key = targetKey(target);
    try {
      await send('DELETE', path, ids, key, callOptions);
    } catch (error) {
      if (!isMissingPermission(error)) throw error;
      if (ids.length === 1) return;
      // SWR may refuse the whole array for one user without a grant: delete who is still there.
      const held = heldLevels(await getAccess(target, callOptions));
      const still = ids.filter((id) => held.has(id));
      if (still.length === 0) return;
      try {
        await send('DELETE', path, still, key, callOptions);
      } catch (again) {
        if (!isMissingPermission(again)) throw again;
      }
    }
  };

  const listRepositories = async (namespace: string, callOptions?: CallOptions): Promise<string[]> => {
    const ns = assertNamespace(namespace);
    const names: string[] = [];
    const seen = new Set<string>();
    for (let page = 0, offset = 0; page < maxPages; page += 1) {
      const query = encodeQuery({ namespace: ns, limit: String(pageSize), offset: String(offset) });
      const repos = await transport.call(
        { method: 'GET', path: `/v2/manage/repos?${query}`, target: ns, parse: parseWith(repoListSchema) },
        callOptions,
      );
      const before = seen.size;
      for (const repo of repos) {
        if (seen.has(repo.name)) continue;
        seen.add(repo.name);
        names.push(repo.name);
      }
      if (repos.length < pageSize) return names;
      if (seen.size === before) throw pagingError(ns, 'a full page brought no new repository');
      offset += repos.length;
    }
    throw pagingError(ns, `more than ${maxPages} pages`);
  };

  const pagingError = (namespace: string, why: string): SwrApiError =>
    new SwrApiError({
      service: 'SWR',
      status: 200,
      code: ClientErrorCodes.invalidResponse,
      serverMessage: `repository listing does not end: ${why}`,
      method: 'GET',
      target: namespace,
      retryable: false,
    });

  const close = async (): Promise<void> => {
    await ownedPool?.destroy();
  };

  return { getAccess, grant, change, revoke, listRepositories, close };
};

export type { SwrClient, SwrClientOptions };
export { accessPath, createSwrClient };

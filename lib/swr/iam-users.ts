/**
 * IAM user look-ups (`UserDirectoryPort`) with a small bounded cache. "No such user" is an
 * answer (cached briefly) only when IAM itself says so; "IAM could not be read" is an error, never
 * `undefined`: a caller must not mistake a failed read (or a gateway's 404) for a missing user.
 * A name is an identity only when exactly one IAM user carries it.
 */
import type { Dispatcher } from 'undici';
import type { CallOptions, IamUser, UserDirectoryPort } from '../domain.ts';
import * as z from '../zod.ts';
import { AmbiguousUserError, isGatewayAnswer, parseErrorBody, SwrApiError } from './api-errors.ts';
import type { AuthProvider } from './auth.ts';
import { assertEndpoint } from './endpoint.ts';
import {
  createPool,
  createTransport,
  defaultTimeouts,
  jsonBody,
  type RawResponse,
  type RequestEvent,
} from './http.ts';
import { assertUserId, assertUserName } from './names.ts';
import type { RetryClock, RetryEvent, RetryPolicy } from './retry.ts';
import { encodeQuery } from './signer.ts';

interface UserCacheOptions {
  maxEntries: number;
  ttlMs: number;
  /** "No such user" is kept shorter: the user may be created any minute. */
  negativeTtlMs: number;
}

const defaultUserCache: UserCacheOptions = { maxEntries: 5_000, ttlMs: 10 * 60_000, negativeTtlMs: 60_000 };

interface UserDirectoryOptions {
  /** `https://iam.myhuaweicloud.com` (http only on loopback). */
  endpoint: string;
  auth: AuthProvider;
  dispatcher?: Dispatcher;
  retry?: Partial<RetryPolicy>;
  requestTimeoutMs?: number;
  cache?: Partial<UserCacheOptions>;
  onRequest?: (event: RequestEvent) => void;
  onRetry?: (event: RetryEvent) => void;
  clock?: Partial<RetryClock>;
}

interface UserDirectory extends UserDirectoryPort {
  /** Destroys the connection pool the directory created. */
  close(): Promise<void>;
}

interface Entry {
  user: IamUser | undefined;
  expiresAt: number;
}

/** A Map in least-recently-used order: a hit moves to the end, the front is evicted. */
const createCache = (options: UserCacheOptions, now: () => number) => {
  const entries = new Map<string, Entry>();
  return {
    get: (key: string): Entry | undefined => {
      const entry = entries.get(key);
      if (entry === undefined) return undefined;
      entries.delete(key);
      if (now() >= entry.expiresAt) return undefined;
      entries.set(key, entry);
      return entry;
    },
    set: (key: string, user: IamUser | undefined): void => {
      entries.delete(key);
      entries.set(key, {
        user,
        expiresAt: now() + (user === undefined ? options.negativeTtlMs : options.ttlMs),
      });
      while (entries.size > options.maxEntries) {
        const oldest = entries.keys().next();
        if (oldest.done === true) break;
        entries.delete(oldest.value);
      }
    },
    delete: (key: string): void => {
      entries.delete(key);
    },
    size: (): number => entries.size,
  };
};

const iamUserSchema = z.looseObject({
  id: z.string().check(z.minLength(1)),
  name: z.string().check(z.minLength(1)),
});

const parseWith =
  <T>(schema: z.ZodMiniType<T>) =>
  (response: RawResponse): T => {
    const result = schema.safeParse(jsonBody(response));
    if (!result.success) throw new Error(z.prettifyError(result.error));
    return result.data;
  };

/** Huawei IAM's documented code for a missing resource (`Could not find %(target)s: %(target_id)s.`); seen as `Iam.0004` too. */
const iamNotFoundCode = /^IAM\.0004$/i;

/**
 * Whether a 404 is IAM itself saying the user does not exist: the documented Huawei form
 * `{"error_code":"IAM.0004","error_msg":"Could not find user: …"}`, or Keystone's
 * `{"error":{"code":404,"title":"Not Found","message":"Could not find user: …"}}`. Anything else
 * (an `APIGW.*` code, an HTML page, an unknown JSON) is not an answer about the user.
 */
const saysNoSuchUser = (response: RawResponse): boolean => {
  if (response.status !== 404) return false;
  const parsed = parseErrorBody(response.text);
  if (parsed.code !== undefined) return iamNotFoundCode.test(parsed.code);
  try {
    const body = JSON.parse(response.text) as { error?: { code?: unknown; title?: unknown } } | null;
    return body?.error?.code === 404 && body.error.title === 'Not Found';
  } catch {
    return false;
  }
};

const isGatewayNotFound = (response: RawResponse): boolean =>
  isGatewayAnswer(parseErrorBody(response.text).code, response.text);

/** A 404 that is not IAM's "no such user" (for findById) goes up as a retryable error. */
const unexplainedNotFound = (response: RawResponse, path: string) => {
  const parsed = parseErrorBody(response.text);
  return new SwrApiError({
    service: 'IAM',
    status: 404,
    code: parsed.code,
    serverMessage: `IAM answered 404 for ${path} without saying the user does not exist${
      parsed.message === undefined ? '' : `: ${parsed.message}`
    }`,
    method: 'GET',
    target: undefined,
    retryable: true,
  });
};

/**
 * The IAM directory.
 *
 * @example
 * const users = createUserDirectory({ endpoint: 'https://iam.myhuaweicloud.com', auth });
 * const alice = await users.findByName('alice', { deadline }); // { id: '…', name: 'alice' } | undefined
 */
const createUserDirectory = (options: UserDirectoryOptions): UserDirectory => {
  const origin = assertEndpoint(options.endpoint, 'IAM endpoint');
  const timeouts = {
    ...defaultTimeouts,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
  };
  const ownedPool = options.dispatcher === undefined ? createPool(origin, timeouts) : undefined;
  const now = options.clock?.now ?? Date.now;
  const transport = createTransport({
    service: 'IAM',
    endpoint: origin,
    auth: options.auth,
    dispatcher: options.dispatcher ?? (ownedPool as Dispatcher),
    timeouts,
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    onRequest: options.onRequest,
    onRetry: options.onRetry,
  });
  const cache = createCache({ ...defaultUserCache, ...options.cache }, now);

  /**
   * Caches an answer under its key, and a found user under its id too. Never under its name from
   * a look-up by id: names are not unique, only `findByName` may decide that one is.
   */
  const remember = (key: string, user: IamUser | undefined): IamUser | undefined => {
    cache.set(key, user);
    if (user !== undefined) cache.set(`id:${user.id}`, user);
    return user;
  };

  const findById = async (userId: string, callOptions?: CallOptions): Promise<IamUser | undefined> => {
    const id = assertUserId(userId);
    const key = `id:${id}`;
    const hit = cache.get(key);
    if (hit !== undefined) return hit.user;
    const path = `/v3/users/${id}`;
    const answer = await transport.call<{ user: IamUser } | undefined>(
      {
        method: 'GET',
        path,
        parse: (response) => {
          const read = parseWith(z.looseObject({ user: iamUserSchema }))(response);
          // An answer about someone else is no answer about this id (a cache or proxy mix-up).
          if (read.user.id !== id) throw new Error(`IAM answered with another user for ${path}`);
          return read;
        },
        interpret: (response) => {
          if (saysNoSuchUser(response)) return { value: undefined };
          // A gateway's 404 (APIGW.*, a page) falls through to GatewayError; any other 404 is unexplained.
          if (response.status === 404 && !isGatewayNotFound(response))
            return unexplainedNotFound(response, path);
          return undefined;
        },
      },
      callOptions,
    );
    if (answer === undefined) return remember(key, undefined);
    return remember(key, { id: answer.user.id, name: answer.user.name });
  };

  const findByName = async (userName: string, callOptions?: CallOptions): Promise<IamUser | undefined> => {
    const name = assertUserName(userName);
    const key = `name:${name}`;
    const hit = cache.get(key);
    if (hit !== undefined) return hit.user;
    const answer = await transport.call(
      {
        method: 'GET',
        path: `/v3/users?${encodeQuery({ name })}`,
        parse: parseWith(z.looseObject({ users: z.array(iamUserSchema) })),
      },
      callOptions,
    );
    // IAM filters by name; only exact (case-sensitive) matches count, whatever the server matched.
    const matches = answer.users.filter((candidate) => candidate.name === name);
    const ids = new Set(matches.map((user) => user.id));
    // Two users with one name: acting on either could touch the wrong person. Never cached.
    if (ids.size > 1) throw new AmbiguousUserError(name, ids.size);
    const user = matches[0];
    return remember(key, user === undefined ? undefined : { id: user.id, name: user.name });
  };

  const close = async (): Promise<void> => {
    await ownedPool?.destroy();
  };

  /** Drops what the cache holds for a user (SWR refused the name we had: IAM may have renamed them). */
  const forget = (userId: string): void => {
    cache.delete(`id:${userId}`);
  };

  return { findById, findByName, forget, close };
};

export type { UserCacheOptions, UserDirectory, UserDirectoryOptions };
export { createUserDirectory, defaultUserCache };

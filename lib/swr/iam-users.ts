/**
 * IAM user look-ups (`UserDirectoryPort`) with a small bounded cache. "No such user" is an
 * answer (cached briefly); "IAM could not be read" is an error, never `undefined`: a caller must
 * not mistake a failed read for a missing user.
 */
import type { Dispatcher } from 'undici';
import { z } from 'zod';
import type { CallOptions, IamUser, UserDirectoryPort } from '../domain.ts';
import { SwrApiError } from './api-errors.ts';
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
    size: (): number => entries.size,
  };
};

const iamUserSchema = z.looseObject({ id: z.string().min(1), name: z.string().min(1) });

const parseWith =
  <T>(schema: z.ZodType<T>) =>
  (response: RawResponse): T => {
    const result = schema.safeParse(jsonBody(response));
    if (!result.success) throw new Error(z.prettifyError(result.error));
    return result.data;
  };

const isNotFound = (error: unknown): boolean => error instanceof SwrApiError && error.status === 404;

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

  const remember = (key: string, user: IamUser | undefined): IamUser | undefined => {
    cache.set(key, user);
    if (user !== undefined) {
      cache.set(`id:${user.id}`, user);
      cache.set(`name:${user.name}`, user);
    }
    return user;
  };

  const findById = async (userId: string, callOptions?: CallOptions): Promise<IamUser | undefined> => {
    const id = assertUserId(userId);
    const key = `id:${id}`;
    const hit = cache.get(key);
    if (hit !== undefined) return hit.user;
    try {
      const answer = await transport.call(
        {
          method: 'GET',
          path: `/v3/users/${id}`,
          parse: parseWith(z.looseObject({ user: iamUserSchema })),
        },
        callOptions,
      );
      return remember(key, { id: answer.user.id, name: answer.user.name });
    } catch (error) {
      if (isNotFound(error)) return remember(key, undefined);
      throw error;
    }
  };

  const findByName = async (userName: string, callOptions?: CallOptions): Promise<IamUser | undefined> => {
    const name = assertUserName(userName);
    const key = `name:${name}`;
    const hit = cache.get(key);
    if (hit !== undefined) return hit.user;
    const answer = await transport.call(
      {
        method: 'GET',
        path: `/v3/users?${new URLSearchParams({ name })}`,
        parse: parseWith(z.looseObject({ users: z.array(iamUserSchema) })),
      },
      callOptions,
    );
    // IAM filters by exact name; the check guards against a server that matches loosely.
    const user = answer.users.find((candidate) => candidate.name === name);
    return remember(key, user === undefined ? undefined : { id: user.id, name: user.name });
  };

  const close = async (): Promise<void> => {
    await ownedPool?.destroy();
  };

  return { findById, findByName, close };
};

export type { UserCacheOptions, UserDirectory, UserDirectoryOptions };
export { createUserDirectory, defaultUserCache };

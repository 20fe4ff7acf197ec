/**
 * One factory for everything that talks to Huawei Cloud: auth, the SWR client and the IAM user
 * directory, sharing one pool per origin. Build it once at module scope (cold start).
 */
import type { Dispatcher } from 'undici';
import type { SwrPermissionsPort, UserDirectoryPort } from '../domain.ts';
import { type AuthConfig, type AuthProvider, createAuthProvider } from './auth.ts';
import { createSwrClient } from './client.ts';
import { assertEndpoint } from './endpoint.ts';
import { createPool, defaultTimeouts, type RequestEvent, type Timeouts } from './http.ts';
import { createUserDirectory, type UserCacheOptions } from './iam-users.ts';
import {
  createRateLimiter,
  defaultRateLimit,
  type RateCut,
  type RateLimit,
  type RateLimitWait,
} from './rate-limit.ts';
import { defaultRetryPolicy, type RetryEvent, type RetryPolicy, systemClock } from './retry.ts';

interface SwrServicesConfig {
  swrEndpoint: string;
  iamEndpoint: string;
  auth: AuthConfig;
  retry?: Partial<RetryPolicy>;
  timeouts?: Partial<Timeouts>;
  userCache?: Partial<UserCacheOptions>;
  /** Page size of repository listings. */
  pageSize?: number;
  /**
   * Pace of every SWR request of this instance (IAM is not limited): `ratePerSecond` is the ceiling
   * (default 20/s, burst 10), adaptive (cut on throttling answers) unless `adaptive: false`.
   */
  rateLimit?: Partial<RateLimit>;
}

interface SwrServicesHooks {
  onRequest?: (event: RequestEvent) => void;
  onRetry?: (event: RetryEvent) => void;
  /** An SWR request waited for the rate limit (count these: a steady stream means the limit is too low). */
  onRateLimitWait?: (event: RateLimitWait) => void;
  /** A throttling answer cut this instance's SWR rate (from, to, which target answered). */
  onRateCut?: (event: RateCut) => void;
  /** One dispatcher for both origins (tests: an undici MockAgent); left open by `close()`. */
  dispatcher?: Dispatcher;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
}

interface SwrServices {
  swr: SwrPermissionsPort;
  users: UserDirectoryPort;
  auth: AuthProvider;
  close(): Promise<void>;
}

/**
 * Auth + SWR client + IAM user directory from a plain config object.
 *
 * @example
 * const services = createSwrServices({
 *   swrEndpoint: 'https://swr-api.ap-southeast-1.myhuaweicloud.com',
 *   iamEndpoint: 'https://iam.myhuaweicloud.com',
 *   auth: { kind: 'password', domain: 'acme', user: 'swr-sync', password, project: 'ap-southeast-1' },
 *   retry: { maxAttempts: 4 },
 *   timeouts: { requestTimeoutMs: 8_000 },
 * });
 * await services.swr.getAccess({ kind: 'namespace', namespace: 'core' });
 */
const createSwrServices = (config: SwrServicesConfig, hooks: SwrServicesHooks = {}): SwrServices => {
  const swrOrigin = assertEndpoint(config.swrEndpoint, 'SWR endpoint');
  const iamOrigin = assertEndpoint(config.iamEndpoint, 'IAM endpoint');
  const timeouts = { ...defaultTimeouts, ...config.timeouts };
  const retry = { ...defaultRetryPolicy, ...config.retry };
  const iamPool = hooks.dispatcher === undefined ? createPool(iamOrigin, timeouts) : undefined;
  const iamDispatcher = hooks.dispatcher ?? (iamPool as Dispatcher);
  const clock = {
    ...(hooks.now === undefined ? {} : { now: hooks.now }),
    ...(hooks.sleep === undefined ? {} : { sleep: hooks.sleep }),
    ...(hooks.random === undefined ? {} : { random: hooks.random }),
  };

  const auth = createAuthProvider(config.auth, {
    iamEndpoint: iamOrigin,
    iamDispatcher,
    requestTimeoutMs: timeouts.requestTimeoutMs,
    ...(hooks.now === undefined ? {} : { now: hooks.now }),
    onRequest: hooks.onRequest,
  });

  const rateLimiter = createRateLimiter(
    { ...defaultRateLimit, ...config.rateLimit },
    { now: hooks.now ?? systemClock.now, sleep: hooks.sleep ?? systemClock.sleep },
    { onWait: hooks.onRateLimitWait, onCut: hooks.onRateCut },
  );

  const swr = createSwrClient({
    rateLimiter,
    endpoint: swrOrigin,
    auth,
    maxAttempts: retry.maxAttempts,
    baseDelayMs: retry.baseDelayMs,
    maxDelayMs: retry.maxDelayMs,
    maxRetryAfterMs: retry.maxRetryAfterMs,
    requestTimeoutMs: timeouts.requestTimeoutMs,
    connectTimeoutMs: timeouts.connectTimeoutMs,
    ...(config.pageSize === undefined ? {} : { pageSize: config.pageSize }),
    ...(hooks.dispatcher === undefined ? {} : { dispatcher: hooks.dispatcher }),
    ...(hooks.onRequest === undefined ? {} : { onRequest: hooks.onRequest }),
    ...(hooks.onRetry === undefined ? {} : { onRetry: hooks.onRetry }),
    ...clock,
  });

  const users = createUserDirectory({
    endpoint: iamOrigin,
    auth,
    dispatcher: iamDispatcher,
    retry,
    requestTimeoutMs: timeouts.requestTimeoutMs,
    ...(config.userCache === undefined ? {} : { cache: config.userCache }),
    ...(hooks.onRequest === undefined ? {} : { onRequest: hooks.onRequest }),
    ...(hooks.onRetry === undefined ? {} : { onRetry: hooks.onRetry }),
    clock,
  });

  const close = async (): Promise<void> => {
    await Promise.all([swr.close(), users.close(), iamPool?.destroy()]);
  };

  return { swr, users, auth, close };
};

export {
  AmbiguousUserError,
  AuthError,
  ClientErrorCodes,
  DeadlineExceededError,
  GatewayError,
  SwrApiError,
} from './api-errors.ts';
export type { AuthConfig, AuthProvider } from './auth.ts';
export { assertEndpoint } from './endpoint.ts';
export type { RateCut, RateLimit, RateLimitWait } from './rate-limit.ts';
export { defaultRateLimit } from './rate-limit.ts';
export type { SwrServices, SwrServicesConfig, SwrServicesHooks };
export { createSwrServices };

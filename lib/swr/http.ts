/**
 * The one way this package sends HTTP: undici `request` on a long-lived dispatcher, explicit
 * timeouts bounded by the caller's deadline, body always consumed, failures typed. `createTransport`
 * adds auth headers, the 401 → fresh credentials → one more try rule, and retries.
 */
import type { Dispatcher } from 'undici';
import type { CallOptions } from '../domain.ts';
import { SyncError } from '../errors.ts';
import {
  AuthError,
  ClientErrorCodes,
  DeadlineExceededError,
  errorFromResponse,
  errorFromTransport,
  isThrottlingResponse,
  parseErrorBody,
  type Service,
  SwrApiError,
} from './api-errors.ts';
import type { AuthProvider } from './auth.ts';
import type { RateLimiter } from './rate-limit.ts';
import { type RetryClock, type RetryEvent, type RetryPolicy, systemClock, withRetry } from './retry.ts';
import { Pool, requestOn } from './undici.ts';

type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'DELETE';

interface Timeouts {
  /** Whole-request bound (headers and body), also cut to the time left before the deadline. */
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** Connections per origin. */
  connections: number;
}

const defaultTimeouts: Timeouts = {
  requestTimeoutMs: 10_000,
  connectTimeoutMs: 5_000,
  keepAliveTimeoutMs: 30_000,
  connections: 16,
};

/** One request sent, for metrics: `status` 0 when no answer came. */
interface RequestEvent {
  service: Service;
  method: HttpMethod;
  path: string;
  status: number;
  ms: number;
}

/**
 * The dispatcher for one origin, created once per cold start and reused.
 *
 * @example const pool = createPool('https://swr-api.ap-southeast-1.myhuaweicloud.com');
 */
const createPool = (origin: string, timeouts: Partial<Timeouts> = {}): Pool => {
  const t = { ...defaultTimeouts, ...timeouts };
  return new Pool(origin, {
    connections: t.connections,
    headersTimeout: t.requestTimeoutMs,
    bodyTimeout: t.requestTimeoutMs,
    connectTimeout: t.connectTimeoutMs,
    keepAliveTimeout: t.keepAliveTimeoutMs,
  });
};

interface RawRequest {
  service: Service;
  method: HttpMethod;
  url: URL;
  headers: Record<string, string>;
  body?: string | undefined;
  target?: string | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * Sends one request and reads its whole body. Throws only for a missing answer (NetworkError,
 * TimeoutError, DeadlineExceededError when the caller aborted); any status is returned.
 */
const sendRaw = async (dispatcher: Dispatcher, request: RawRequest): Promise<RawResponse> => {
  const timeoutMs = Math.max(1, Math.floor(request.timeoutMs));
  const timer = AbortSignal.timeout(timeoutMs);
  const signal = request.signal === undefined ? timer : AbortSignal.any([request.signal, timer]);
  const context = { service: request.service, method: request.method, target: request.target };
  try {
    const response = await requestOn(dispatcher, {
      origin: request.url.origin,
      path: `${request.url.pathname}${request.url.search}`,
      method: request.method,
      headers: request.headers,
      body: request.body ?? null,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal,
    });
    // Reading the body to the end frees the connection for the next request.
    const text = await response.body.text();
    return { status: response.statusCode, headers: response.headers, text };
  } catch (error) {
    if (request.signal?.aborted === true)
      throw new DeadlineExceededError(`${request.service} ${request.method} aborted by the caller`, {
        target: request.target,
        cause: error,
      });
    throw errorFromTransport(error, { ...context, timedOut: timer.aborted });
  }
};

interface TransportOptions {
  service: Service;
  /** Origin, already checked with `assertEndpoint`. */
  endpoint: string;
  auth: AuthProvider;
  dispatcher: Dispatcher;
  retry?: Partial<RetryPolicy>;
  timeouts?: Partial<Timeouts>;
  clock?: Partial<RetryClock>;
  onRequest?: ((event: RequestEvent) => void) | undefined;
  onRetry?: ((event: RetryEvent) => void) | undefined;
  /**
   * Taken before every request sent, retries and the resend after a 401 included; told of every
   * answer (throttling or not) so that an adaptive limiter can follow the account's quota.
   */
  rateLimiter?: RateLimiter | undefined;
}

interface HttpCall<T> {
  method: HttpMethod;
  /** Path with its query, already made of validated parts. */
  path: string;
  body?: unknown;
  /** `ns` or `ns/repo`, for errors. */
  target?: string | undefined;
  /** Turns a 2xx answer into the result; a throw here is retried like a bad answer. */
  parse: (response: RawResponse) => T;
  /**
   * Reads a non-2xx answer before the generic classification: `{ value }` when the answer is a
   * result after all (IAM's "no such user"), a SyncError to throw, or `undefined` for the default.
   */
  interpret?: (response: RawResponse) => { value: T } | SyncError | undefined;
}

interface Transport {
  call<T>(request: HttpCall<T>, options?: CallOptions): Promise<T>;
}

const isSuccess = (status: number): boolean => status >= 200 && status < 300;

/** A throttling answer, read the way the error classification reads it (status and code). */
const isThrottled = (response: RawResponse): boolean => {
  if (response.status === 429) return true;
  if (isSuccess(response.status)) return false;
  return isThrottlingResponse(response.status, parseErrorBody(response.text).code);
};

/**
 * Authenticated, retried JSON calls against one origin.
 *
 * @example
 * const iam = createTransport({ service: 'IAM', endpoint, auth, dispatcher: createPool(endpoint) });
 * const user = await iam.call({ method: 'GET', path: `/v3/users/${id}`, parse: (r) => JSON.parse(r.text) });
 */
const createTransport = (options: TransportOptions): Transport => {
  const timeouts = { ...defaultTimeouts, ...options.timeouts };
  const clock = { ...systemClock, ...options.clock };

  const call = async <T>(request: HttpCall<T>, callOptions: CallOptions = {}): Promise<T> => {
    const url = new URL(request.path, options.endpoint);
    const body = request.body === undefined ? undefined : JSON.stringify(request.body);
    // One fresh set of credentials per logical call, whatever the number of attempts.
    let refreshed = false;

    // Measured when each request leaves (after any rate-limit wait), so no request outlives the deadline.
    const remainingMs = (): number =>
      callOptions.deadline === undefined ? Number.POSITIVE_INFINITY : callOptions.deadline - clock.now();

    const attempt = async (): Promise<T> => {
      for (;;) {
        const slot = await options.rateLimiter?.acquire({
          deadline: callOptions.deadline,
          signal: callOptions.signal,
          target: request.target,
        });
        const authHeaders = await options.auth.headers({
          service: options.service,
          method: request.method,
          url,
          body,
        });
        const started = clock.now();
        let response: RawResponse;
        try {
          response = await sendRaw(options.dispatcher, {
            service: options.service,
            method: request.method,
            url,
            headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders },
            body,
            target: request.target,
            timeoutMs: Math.min(timeouts.requestTimeoutMs, remainingMs()),
            signal: callOptions.signal,
          });
        } catch (error) {
          options.onRequest?.({
            service: options.service,
            method: request.method,
            path: url.pathname,
            status: 0,
            ms: clock.now() - started,
          });
          throw error;
        }
        options.onRequest?.({
          service: options.service,
          method: request.method,
          path: url.pathname,
          status: response.status,
          ms: clock.now() - started,
        });
        if (slot !== undefined)
          options.rateLimiter?.record(slot, isThrottled(response) ? 'throttled' : 'accepted');
        if (isSuccess(response.status)) return parseOrThrow(request, response);
        const interpreted = request.interpret?.(response);
        if (interpreted instanceof SyncError) throw interpreted;
        if (interpreted !== undefined) return interpreted.value;
        const failure = errorFromResponse({
          service: options.service,
          status: response.status,
          method: request.method,
          target: request.target,
          body: response.text,
          retryAfter: response.headers['retry-after'],
          now: clock.now(),
        });
        if (failure instanceof AuthError && !refreshed) {
          refreshed = true;
          options.auth.invalidate(authHeaders);
          continue;
        }
        throw failure;
      }
    };

    return withRetry(() => attempt(), {
      policy: options.retry,
      clock,
      deadline: callOptions.deadline,
      signal: callOptions.signal,
      onRetry: options.onRetry,
      target: request.target,
    });
  };

  const parseOrThrow = <T>(request: HttpCall<T>, response: RawResponse): T => {
    try {
      return request.parse(response);
    } catch (error) {
      if (error instanceof SyncError) throw error;
      // A 2xx whose body we cannot read (a proxy page, a truncated answer): never act on it.
      throw new SwrApiError(
        {
          service: options.service,
          status: response.status,
          code: ClientErrorCodes.invalidResponse,
          serverMessage: `unexpected response body (${describeBody(response)}): ${
            error instanceof SyntaxError ? 'not JSON' : error instanceof Error ? error.message : String(error)
          }`,
          method: request.method,
          target: request.target,
          retryable: true,
        },
        { cause: error },
      );
    }
  };

  return { call };
};

/** What a body was, for messages: its type and size, never its content (it may quote secrets). */
const describeBody = (response: RawResponse): string => {
  const type = response.headers['content-type'];
  const contentType = (Array.isArray(type) ? type[0] : type) ?? 'no content type';
  return response.text === ''
    ? `empty, ${contentType}`
    : `${response.text.length} characters of ${contentType}`;
};

/** `JSON.parse` of a body, `undefined` for an empty one. */
const jsonBody = (response: RawResponse): unknown =>
  response.text.trim() === '' ? undefined : JSON.parse(response.text);

export type {
  HttpCall,
  HttpMethod,
  RawRequest,
  RawResponse,
  RequestEvent,
  Timeouts,
  Transport,
  TransportOptions,
};
export { createPool, createTransport, defaultTimeouts, jsonBody, sendRaw };

/**
 * What an SWR or IAM failure means for the caller: the error body is parsed (all three shapes of
 * swr-api.md, plus non-JSON pages from gateways) and classified by status AND code into retryable
 * or permanent. Messages carry the method, target, status, code and the server's own text only,
 * and that text goes through `redactSecrets` first: gateways and IAM echo what they were sent, so
 * a request header, token, password or secret key could otherwise come back inside it.
 */
import { ErrorCodes, SyncError } from '../errors.ts';
import { redactSecrets } from '../redact.ts';

/** The service a call went to, named in messages so a person knows where to look. */
type Service = 'SWR' | 'IAM';

/** SWR (and API gateway) codes the client acts upon. */
const SwrCodes = {
  repoPermissionExists: 'SVCSTG.SWR.4090089',
  namespacePermissionExists: 'SVCSTG.SWR.4090076',
  repoPermissionMissing: 'SVCSTG.SWR.4040091',
  namespacePermissionMissing: 'SVCSTG.SWR.4040078',
  authFailed: 'SVCSTG.SWR.4010000',
  busy: 'SVCSTG.SWR.4090023',
  tooManyRequests: 'SVCSTG.SWR.4031032',
  tooManyRequests2: 'SVCSTG.SWR.4031042',
  gatewayThrottled: 'APIGW.0308',
} as const;

/** Codes of the client's own (beside `ErrorCodes` of lib/errors.ts), as they reach DLQ attributes. */
const ClientErrorCodes = {
  /** A 2xx whose body is not what the API documents (HTML, cut off, wrong shape): a failed read. */
  invalidResponse: 'INVALID_RESPONSE',
  /** A 404 from the API gateway without a code (a non-JSON page). */
  gateway: 'GATEWAY_ERROR',
  /** IAM has more than one user with the name an event gave. */
  ambiguousUser: 'AMBIGUOUS_USER',
} as const;

/** Retryable 403 and 409 codes; every other 4xx is permanent. */
const retryableClientCodes: ReadonlySet<string> = new Set([
  SwrCodes.busy,
  SwrCodes.tooManyRequests,
  SwrCodes.tooManyRequests2,
]);

/** Codes that say "too many requests" whatever the status: the caller should slow down. */
const throttlingCodes: ReadonlySet<string> = new Set([
  SwrCodes.tooManyRequests,
  SwrCodes.tooManyRequests2,
  SwrCodes.gatewayThrottled,
]);

const existsCodes: ReadonlySet<string> = new Set([
  SwrCodes.repoPermissionExists,
  SwrCodes.namespacePermissionExists,
]);

const missingPermissionCodes: ReadonlySet<string> = new Set([
  SwrCodes.repoPermissionMissing,
  SwrCodes.namespacePermissionMissing,
]);

/** Longest server text kept in a message: enough to read, too short to flood a DLQ attribute. */
const maxServerText = 300;

interface ParsedErrorBody {
  code: string | undefined;
  message: string | undefined;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const text = (value: unknown): string | undefined =>
  typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;

const fromErrorItems = (items: unknown): ParsedErrorBody | undefined => {
  if (!Array.isArray(items)) return undefined;
  const first: unknown = items.find(isRecord);
  if (!isRecord(first)) return undefined;
  return { code: text(first.errorCode), message: text(first.errorMessage) };
};

const clip = (value: string | undefined): string | undefined =>
  value === undefined ? undefined : value.replace(/\s+/g, ' ').slice(0, maxServerText) || undefined;

/**
 * Reads an error body in any of the shapes SWR, IAM and the API gateway send.
 *
 * @example parseErrorBody('{"error_code":"SVCSTG.SWR.4040010","error_msg":"repo not found"}')
 * // { code: 'SVCSTG.SWR.4040010', message: 'repo not found' }
 */
const parseErrorBody = (body: string): ParsedErrorBody => {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { code: undefined, message: clip(body.trim()) };
  }
  const items = fromErrorItems(Array.isArray(json) ? json : isRecord(json) ? json.errors : undefined);
  if (isRecord(json)) {
    // IAM answers `{"error":{"code":401,"message":"…","title":"…"}}`.
    const iam = isRecord(json.error) ? json.error : undefined;
    return {
      code: items?.code ?? text(json.error_code),
      message: clip(items?.message ?? text(json.error_msg) ?? text(iam?.message)),
    };
  }
  return { code: items?.code, message: clip(items?.message) };
};

/**
 * Whether a failed answer may succeed if sent again, per the table of swr-api.md.
 *
 * @example isRetryableResponse(409, 'SVCSTG.SWR.4090023') // true (system busy)
 */
const isRetryableResponse = (status: number, code: string | undefined): boolean => {
  if (status >= 500 || status === 429 || status === 408) return true;
  return (status === 403 || status === 409) && code !== undefined && retryableClientCodes.has(code);
};

/**
 * Whether an answer is throttling (the account or the API asks for fewer requests), per the table
 * of swr-api.md: 429 (APIGW.0308 or no code), or SWR's 403 "too many requests". Busy (409
 * SVCSTG.SWR.4090023) and 5xx are failures of the service, not of our pace: they are retried but
 * do not slow the instance.
 *
 * @example isThrottlingResponse(403, 'SVCSTG.SWR.4031032') // true
 */
const isThrottlingResponse = (status: number, code: string | undefined): boolean =>
  status === 429 || (code !== undefined && throttlingCodes.has(code));

/**
 * `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date; `undefined` when absent
 * or unreadable.
 */
const parseRetryAfter = (value: string | string[] | undefined, now: number): number | undefined => {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw.trim() === '') return undefined;
  const trimmed = raw.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
};

interface ApiErrorInit {
  service: Service;
  status: number;
  code: string | undefined;
  serverMessage: string | undefined;
  method: string;
  target: string | undefined;
  retryable: boolean;
  retryAfterMs?: number | undefined;
}

const describe = (init: ApiErrorInit, code: string): string => {
  const where = init.target === undefined ? '' : ` ${init.target}`;
  const detail = init.serverMessage === undefined ? '' : `: ${redactSecrets(init.serverMessage)}`;
  return `${init.service} ${init.method}${where} answered ${init.status} ${code}${detail}`;
};

/** An HTTP answer outside 2xx from SWR or IAM. */
class SwrApiError extends SyncError {
  readonly status: number;
  readonly method: string;
  readonly service: Service;
  /** Server-asked wait before the next attempt (`Retry-After`), when given. */
  readonly retryAfterMs: number | undefined;
  /** How many attempts the call made before giving up; set by the retry loop. */
  attempts = 1;

  constructor(init: ApiErrorInit, options?: ErrorOptions) {
    const code = init.code ?? `HTTP_${init.status}`;
    super(describe(init, code), { ...options, code, retryable: init.retryable, target: init.target });
    this.name = 'SwrApiError';
    this.status = init.status;
    this.method = init.method;
    this.service = init.service;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** Which configuration variable names the endpoint of a service. */
const endpointVariable: Record<Service, string> = { SWR: 'SWR_ENDPOINT', IAM: 'IAM_ENDPOINT' };

/**
 * A 404 that came from the API gateway (`APIGW.*`, or a page that is not JSON), not from the
 * service: the API was not found where the endpoint points (a wrong or mistyped endpoint, an API
 * not published in that region). It says nothing about the repository or user asked for, so it is
 * never "not found" and never "no such user". Retryable: a gateway that was being reconfigured
 * recovers; a wrong endpoint ends in the DLQ with this message after the receive limit.
 */
class GatewayError extends SwrApiError {
  constructor(init: Omit<ApiErrorInit, 'retryable'>, options?: ErrorOptions) {
    super(
      {
        ...init,
        code: init.code ?? ClientErrorCodes.gateway,
        retryable: true,
        serverMessage: `the ${init.service} endpoint answered a gateway error, not ${init.service} itself (check ${endpointVariable[init.service]})${
          init.serverMessage === undefined ? '' : `: ${init.serverMessage}`
        }`,
      },
      options,
    );
    this.name = 'GatewayError';
  }
}

/**
 * IAM knows several users by the name an event gave: acting on any one of them could grant the
 * wrong person. Permanent: the producer must send the user id.
 */
class AmbiguousUserError extends SyncError {
  readonly userName: string;
  readonly matches: number;

  constructor(userName: string, matches: number, options?: ErrorOptions) {
    super(`IAM has ${matches} users named ${JSON.stringify(userName)}: the event must name the user by id`, {
      ...options,
      code: ClientErrorCodes.ambiguousUser,
      retryable: false,
    });
    this.name = 'AmbiguousUserError';
    this.userName = userName;
    this.matches = matches;
  }
}

/** Credentials refused: a 401 after a fresh token, or IAM refusing to issue one. Permanent. */
class AuthError extends SwrApiError {
  constructor(
    init: Omit<ApiErrorInit, 'retryable' | 'code'> & { code?: string | undefined },
    options?: ErrorOptions,
  ) {
    super({ ...init, code: init.code ?? ErrorCodes.auth, retryable: false }, options);
    this.name = 'AuthError';
  }
}

interface TransportErrorInit {
  service: Service;
  method: string;
  target: string | undefined;
  /** The low-level code (`ECONNRESET`, `UND_ERR_SOCKET`), never the low-level message. */
  reason: string;
}

/** The connection failed or broke before a full answer arrived. Retryable. */
class NetworkError extends SyncError {
  readonly method: string;
  readonly service: Service;
  readonly reason: string;
  attempts = 1;

  constructor(init: TransportErrorInit, options?: ErrorOptions & { code?: string; what?: string }) {
    const where = init.target === undefined ? '' : ` ${init.target}`;
    super(`${init.service} ${init.method}${where} ${options?.what ?? 'failed'} (${init.reason})`, {
      ...options,
      code: options?.code ?? ErrorCodes.network,
      retryable: true,
      target: init.target,
    });
    this.name = 'NetworkError';
    this.method = init.method;
    this.service = init.service;
    this.reason = init.reason;
  }
}

/** No complete answer within the request timeout. Retryable. */
class TimeoutError extends NetworkError {
  constructor(init: TransportErrorInit, options?: ErrorOptions) {
    super(init, { ...options, code: ErrorCodes.timeout, what: 'timed out' });
    this.name = 'TimeoutError';
  }
}

/**
 * The caller's deadline (or abort) came before the work could be done. Retryable: the message
 * goes back to the queue and is tried again by a later invocation.
 */
class DeadlineExceededError extends SyncError {
  attempts = 0;

  constructor(message: string, options?: ErrorOptions & { target?: string | undefined; attempts?: number }) {
    super(message, { ...options, code: ErrorCodes.deadline, retryable: true, target: options?.target });
    this.name = 'DeadlineExceededError';
    this.attempts = options?.attempts ?? 0;
  }
}

interface ResponseFailure {
  service: Service;
  status: number;
  method: string;
  target: string | undefined;
  body: string;
  retryAfter?: string | string[] | undefined;
  now: number;
}

/**
 * The typed error for a non-2xx answer.
 *
 * @example
 * errorFromResponse({ service: 'SWR', status: 429, method: 'POST', target: 'core/api', body: '', now: Date.now() })
 * // SwrApiError { code: 'HTTP_429', retryable: true }
 */
const errorFromResponse = (failure: ResponseFailure): SwrApiError => {
  const parsed = parseErrorBody(failure.body);
  const init = {
    service: failure.service,
    status: failure.status,
    method: failure.method,
    target: failure.target,
    code: parsed.code,
    serverMessage: parsed.message,
  };
  if (failure.status === 401) return new AuthError(init);
  if (failure.status === 404 && isGatewayAnswer(parsed.code, failure.body)) return new GatewayError(init);
  return new SwrApiError({
    ...init,
    retryable: isRetryableResponse(failure.status, parsed.code),
    retryAfterMs: parseRetryAfter(failure.retryAfter, failure.now),
  });
};

const isJson = (body: string): boolean => {
  try {
    JSON.parse(body);
    return true;
  } catch {
    return false;
  }
};

/** An answer of the API gateway or a proxy in front of it: an `APIGW.*` code, or no JSON at all. */
const isGatewayAnswer = (code: string | undefined, body: string): boolean =>
  code?.toUpperCase().startsWith('APIGW.') === true || !isJson(body);

const timeoutCodes: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
  'TimeoutError',
]);

const reasonOf = (error: unknown): string => {
  if (isRecord(error) || error instanceof Error) {
    const record = error as { code?: unknown; name?: unknown };
    if (typeof record.code === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(record.code)) return record.code;
    if (typeof record.name === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(record.name)) return record.name;
  }
  return 'unknown';
};

/**
 * The typed error for a request that got no answer: our own SyncErrors pass through, timeouts
 * become TimeoutError, the rest NetworkError.
 */
const errorFromTransport = (
  error: unknown,
  context: Omit<TransportErrorInit, 'reason'> & { timedOut?: boolean },
): SyncError => {
  if (error instanceof SyncError) return error;
  const reason = reasonOf(error);
  const init = { ...context, reason };
  return context.timedOut === true || timeoutCodes.has(reason)
    ? new TimeoutError(init, { cause: error })
    : new NetworkError(init, { cause: error });
};

const isExistsConflict = (error: unknown): error is SwrApiError =>
  error instanceof SwrApiError && error.status === 409 && existsCodes.has(error.code);

const isMissingPermission = (error: unknown): error is SwrApiError =>
  error instanceof SwrApiError && error.status === 404 && missingPermissionCodes.has(error.code);

export type { ApiErrorInit, ParsedErrorBody, ResponseFailure, Service, TransportErrorInit };
export {
  AmbiguousUserError,
  AuthError,
  ClientErrorCodes,
  DeadlineExceededError,
  errorFromResponse,
  errorFromTransport,
  GatewayError,
  isExistsConflict,
  isGatewayAnswer,
  isMissingPermission,
  isRetryableResponse,
  isThrottlingResponse,
  NetworkError,
  parseErrorBody,
  parseRetryAfter,
  SwrApiError,
  SwrCodes,
  TimeoutError,
};

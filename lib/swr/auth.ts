/**
 * How requests to SWR and IAM are authenticated. One port, three adapters chosen by config:
 * a static token, an IAM password token (optionally exchanged for an agency token), or AK/SK
 * signing. Secrets stay inside the closures here: no message, log line or error carries them.
 */
import type { Dispatcher } from 'undici';
import { ConfigError } from '../errors.ts';
import { registerSecrets } from '../redact.ts';
import { AuthError, errorFromResponse } from './api-errors.ts';
import { assertEndpoint } from './endpoint.ts';
import { defaultTimeouts, type RequestEvent, sendRaw } from './http.ts';
import { signRequest } from './signer.ts';

/** What a provider may need to know about the request it authenticates. */
interface AuthRequest {
  /** IAM is a global service: under AK/SK its requests name the account (`X-Domain-Id`). */
  service?: 'SWR' | 'IAM';
  method: string;
  url: URL;
  /** The exact body that will be sent (signing hashes it). */
  body: string | undefined;
}

/**
 * The port the transport uses: headers to add to a request, and `invalidate` after a 401 so the
 * next request gets fresh credentials.
 */
interface AuthProvider {
  readonly kind: AuthConfig['kind'];
  headers(request: AuthRequest): Promise<Record<string, string>>;
  /**
   * Drops the cached credentials. Pass the headers that were refused: when another caller has
   * already refreshed them, nothing is dropped (ten parallel 401s cause one new token, not ten).
   */
  invalidate(rejected?: Record<string, string>): void;
}

type AuthConfig =
  | { kind: 'token'; token: string }
  | {
      kind: 'password';
      /** Account (domain) name. */
      domain: string;
      user: string;
      password: string;
      /** Project (region) name the token is scoped to, e.g. `ap-southeast-1`. */
      project: string;
      /** Account that owns the agency; defaults to `domain`. */
      agencyDomain?: string | undefined;
      agency?: string | undefined;
    }
  | {
      kind: 'aksk';
      ak: string;
      sk: string;
      projectId: string;
      /** Account (domain) id, sent as `X-Domain-Id` on IAM calls (a global service). */
      domainId?: string | undefined;
      securityToken?: string | undefined;
    };

interface PasswordAuthDeps {
  iamEndpoint: string;
  dispatcher: Dispatcher;
  now?: () => number;
  requestTimeoutMs?: number;
  /** Renew this long before `expires_at` (halved for tokens that live shorter than twice this). */
  refreshMarginMs?: number;
  onRequest?: ((event: RequestEvent) => void) | undefined;
}

/** Tokens whose `expires_at` cannot be read are kept this long. */
const fallbackTokenLifetimeMs = 60 * 60_000;
const defaultRefreshMarginMs = 5 * 60_000;

const requireFields = (config: Record<string, unknown>, fields: readonly string[], kind: string): void => {
  const problems = fields
    .filter((field) => typeof config[field] !== 'string' || (config[field] as string).trim() === '')
    .map((field) => `auth.${field} is required for kind "${kind}"`);
  if (problems.length > 0) throw new ConfigError('SWR authentication is not configured', problems);
};

/**
 * A fixed `X-Auth-Token` (tests, or a token refreshed outside this service).
 *
 * @example const auth = createStaticTokenAuth('MIIC…');
 */
const createStaticTokenAuth = (token: string): AuthProvider => {
  requireFields({ token }, ['token'], 'token');
  registerSecrets([token]);
  return {
    kind: 'token',
    headers: async () => ({ 'X-Auth-Token': token }),
    invalidate: () => {},
  };
};

/**
 * AK/SK signing (SDK-HMAC-SHA256) of every request; nothing to cache or renew.
 *
 * @example const auth = createAkSkAuth({ kind: 'aksk', ak, sk, projectId });
 */
const createAkSkAuth = (
  config: Extract<AuthConfig, { kind: 'aksk' }>,
  now: () => number = Date.now,
): AuthProvider => {
  requireFields(config, ['ak', 'sk', 'projectId'], 'aksk');
  registerSecrets([config.sk, config.securityToken]);
  const credentials = { ak: config.ak, sk: config.sk };
  return {
    kind: 'aksk',
    headers: async (request) => {
      // IAM is global: Huawei's signing guide has AK/SK calls to it name the account in X-Domain-Id
      // (signed), with no project; the SDKs' GlobalCredentials do the same.
      if (request.service === 'IAM' && config.domainId === undefined)
        throw new ConfigError('SWR authentication is not configured', [
          'auth.domainId (HUAWEICLOUD_DOMAIN_ID) is required for IAM calls under AK/SK',
        ]);
      const scope =
        request.service === 'IAM' ? { domainId: config.domainId } : { projectId: config.projectId };
      return signRequest(
        { method: request.method, url: request.url, headers: {}, body: request.body },
        credentials,
        { date: new Date(now()), ...scope, securityToken: config.securityToken },
      );
    },
    invalidate: () => {},
  };
};

interface CachedToken {
  token: string;
  refreshAt: number;
}

const readExpiry = (text: string): number | undefined => {
  try {
    const body = JSON.parse(text) as { token?: { expires_at?: unknown } } | null;
    const value = body?.token?.expires_at;
    if (typeof value !== 'string') return undefined;
    const at = Date.parse(value);
    return Number.isNaN(at) ? undefined : at;
  } catch {
    return undefined;
  }
};

/**
 * IAM tokens from a password (and, with `agency`, an assume_role exchange), cached until shortly
 * before they expire. Concurrent callers share one in-flight token request.
 *
 * @example
 * const auth = createPasswordAuth(
 *   { kind: 'password', domain: 'acme', user: 'swr-sync', password, project: 'ap-southeast-1' },
 *   { iamEndpoint: 'https://iam.myhuaweicloud.com', dispatcher: iamPool },
 * );
 */
const createPasswordAuth = (
  config: Extract<AuthConfig, { kind: 'password' }>,
  deps: PasswordAuthDeps,
): AuthProvider => {
  requireFields(config, ['domain', 'user', 'password', 'project'], 'password');
  registerSecrets([config.password]);
  if (config.agencyDomain !== undefined && config.agency === undefined)
    throw new ConfigError('SWR authentication is not configured', ['auth.agencyDomain needs auth.agency']);
  const origin = assertEndpoint(deps.iamEndpoint, 'IAM endpoint');
  const now = deps.now ?? Date.now;
  const marginMs = deps.refreshMarginMs ?? defaultRefreshMarginMs;
  const timeoutMs = deps.requestTimeoutMs ?? defaultTimeouts.requestTimeoutMs;
  const scope = { project: { name: config.project } };
  let cached: CachedToken | undefined;
  let inflight: Promise<CachedToken> | undefined;

  const requestToken = async (body: unknown, headers: Record<string, string> = {}): Promise<CachedToken> => {
    const url = new URL('/v3/auth/tokens?nocatalog=true', origin);
    const started = now();
    let response: Awaited<ReturnType<typeof sendRaw>>;
    try {
      response = await sendRaw(deps.dispatcher, {
        service: 'IAM',
        method: 'POST',
        url,
        headers: { 'Content-Type': 'application/json;charset=utf8', ...headers },
        body: JSON.stringify(body),
        timeoutMs,
      });
    } catch (error) {
      deps.onRequest?.({
        service: 'IAM',
        method: 'POST',
        path: url.pathname,
        status: 0,
        ms: now() - started,
      });
      throw error;
    }
    deps.onRequest?.({
      service: 'IAM',
      method: 'POST',
      path: url.pathname,
      status: response.status,
      ms: now() - started,
    });
    const init = { service: 'IAM' as const, method: 'POST', target: undefined };
    if (response.status < 200 || response.status >= 300)
      throw errorFromResponse({
        ...init,
        status: response.status,
        body: response.text,
        retryAfter: response.headers['retry-after'],
        now: now(),
      });
    const header = response.headers['x-subject-token'];
    const token = Array.isArray(header) ? header[0] : header;
    if (token === undefined || token === '')
      throw new AuthError({
        ...init,
        status: response.status,
        serverMessage: 'no X-Subject-Token in the answer',
      });
    // Issued tokens are secrets too: an upstream error that quotes one must not carry it further.
    registerSecrets([token]);
    const fetchedAt = now();
    const expiresAt = readExpiry(response.text) ?? fetchedAt + fallbackTokenLifetimeMs;
    return { token, refreshAt: expiresAt - Math.min(marginMs, Math.max(0, expiresAt - fetchedAt) / 2) };
  };

  const fetchToken = async (): Promise<CachedToken> => {
    const user = await requestToken({
      auth: {
        identity: {
          methods: ['password'],
          password: {
            user: { domain: { name: config.domain }, name: config.user, password: config.password },
          },
        },
        scope,
      },
    });
    if (config.agency === undefined) return user;
    return requestToken(
      {
        auth: {
          identity: {
            methods: ['assume_role'],
            assume_role: { domain_name: config.agencyDomain ?? config.domain, agency_name: config.agency },
          },
          scope,
        },
      },
      { 'X-Auth-Token': user.token },
    );
  };

  const current = async (): Promise<string> => {
    if (cached !== undefined && now() < cached.refreshAt) return cached.token;
    if (inflight === undefined) {
      inflight = fetchToken()
        .then((fresh) => {
          cached = fresh;
          return fresh;
        })
        .finally(() => {
          inflight = undefined;
        });
    }
    return (await inflight).token;
  };

  return {
    kind: 'password',
    headers: async () => ({ 'X-Auth-Token': await current() }),
    invalidate: (rejected) => {
      const refused = rejected?.['X-Auth-Token'];
      if (refused !== undefined && cached !== undefined && cached.token !== refused) return;
      cached = undefined;
    },
  };
};

interface AuthDeps {
  /** Needed for `password` only. */
  iamEndpoint?: string | undefined;
  /** The IAM dispatcher; needed for `password` only. */
  iamDispatcher?: Dispatcher | undefined;
  now?: () => number;
  requestTimeoutMs?: number;
  refreshMarginMs?: number;
  onRequest?: ((event: RequestEvent) => void) | undefined;
}

/**
 * The provider for a config object.
 *
 * @example const auth = createAuthProvider({ kind: 'token', token }, {});
 */
const createAuthProvider = (config: AuthConfig, deps: AuthDeps = {}): AuthProvider => {
  switch (config.kind) {
    case 'token':
      return createStaticTokenAuth(config.token);
    case 'aksk':
      return createAkSkAuth(config, deps.now);
    case 'password': {
      if (deps.iamEndpoint === undefined || deps.iamDispatcher === undefined)
        throw new ConfigError('SWR authentication is not configured', [
          'password authentication needs the IAM endpoint',
        ]);
      return createPasswordAuth(config, {
        iamEndpoint: deps.iamEndpoint,
        dispatcher: deps.iamDispatcher,
        ...(deps.now === undefined ? {} : { now: deps.now }),
        ...(deps.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: deps.requestTimeoutMs }),
        ...(deps.refreshMarginMs === undefined ? {} : { refreshMarginMs: deps.refreshMarginMs }),
        onRequest: deps.onRequest,
      });
    }
    default: {
      const kind: unknown = (config as { kind?: unknown }).kind;
      throw new ConfigError('SWR authentication is not configured', [
        `auth.kind must be token, password or aksk (got ${JSON.stringify(kind)})`,
      ]);
    }
  }
};

export { assertEndpoint } from './endpoint.ts';
export type { AuthConfig, AuthDeps, AuthProvider, AuthRequest, PasswordAuthDeps };
export { createAkSkAuth, createAuthProvider, createPasswordAuth, createStaticTokenAuth };

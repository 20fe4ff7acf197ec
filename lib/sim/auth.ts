/**
 * Who is calling: an `X-Auth-Token` the simulator issued (or the seed's static token), or an
 * AK/SK signature. Token failures answer like SWR (401 SVCSTG.SWR.4010000) or IAM; AK/SK
 * failures answer like the API gateway (401 APIGW.0301), which checks them before SWR.
 */
import { randomBytes } from 'node:crypto';
import { parseAuthorization, parseSdkDate, type SignedRequest, signatureMatches } from './aksk.ts';
import { ErrorShapes, type Failure, failure } from './replies.ts';
import type { World } from './world.ts';

type Service = 'swr' | 'iam';

interface IssuedToken {
  userId: string;
  methods: string[];
  issuedAt: number;
  expiresAt: number;
}

const maxSkewMs = 15 * 60 * 1000;
const maxBadSignatures = 5;
const lockMs = 5 * 60 * 1000;

const badToken = (service: Service): Failure =>
  service === 'swr'
    ? failure(401, 'SVCSTG.SWR.4010000', 'authentication failed: the token may be expired or invalid')
    : failure(401, 'IAM.0001', 'The request you have made requires authentication.', ErrorShapes.flat);

const gatewayRefusal = (message: string): Failure =>
  failure(401, 'APIGW.0301', `Incorrect IAM authentication information: ${message}`, ErrorShapes.flat);

class Authenticator {
  readonly #world: World;
  readonly #now: () => number;
  readonly #ttlMs: number;
  readonly #tokens = new Map<string, IssuedToken>();
  readonly #lockouts = new Map<string, { failures: number; lockedUntil: number }>();

  constructor(world: World, now: () => number, ttlSeconds: number) {
    this.#world = world;
    this.#now = now;
    this.#ttlMs = ttlSeconds * 1000;
  }

  issue(userId: string, methods: string[]): { token: string } & IssuedToken {
    const issuedAt = this.#now();
    const issued: IssuedToken = { userId, methods, issuedAt, expiresAt: issuedAt + this.#ttlMs };
    // Real tokens are long opaque strings; keep the length in the same order of magnitude.
    const token = `MIIsim${randomBytes(96).toString('base64url')}`;
    this.#tokens.set(token, issued);
    return { token, ...issued };
  }

  /**
   * Invalidates every issued token at least `minAgeMs` old (the seed's static token stays valid).
   * IAM never kills a token in the instant it issues it; an age lets a test expire tokens under
   * the handlers' feet without also refusing the fresh token a client just fetched.
   */
  expireAll(minAgeMs = 0): void {
    const now = this.#now();
    for (const [token, issued] of this.#tokens)
      if (now - issued.issuedAt >= minAgeMs) this.#tokens.delete(token);
  }

  /** The calling user's id, or the failure to answer. */
  authenticate(request: SignedRequest, service: Service): string | Failure {
    const token = request.headers['x-auth-token'];
    if (typeof token === 'string' && token !== '') return this.#byToken(token, service);
    const authorization = request.headers.authorization;
    if (typeof authorization === 'string' && authorization.startsWith('SDK-HMAC-SHA256')) {
      const caller = this.#bySignature(request, authorization);
      return typeof caller === 'string' && service === 'iam' ? this.#globalScope(request, caller) : caller;
    }
    return badToken(service);
  }

  /**
   * IAM is a global service: under AK/SK the account must be named in `X-Domain-Id` (Huawei's
   * signing guide). What the gateway answers without it is not documented; a 401 APIGW.0301 in the
   * gateway's flat shape is inferred, the answer the gateway gives to every other credential problem.
   */
  #globalScope(request: SignedRequest, caller: string): string | Failure {
    const domainId = request.headers['x-domain-id'];
    if (typeof domainId !== 'string' || domainId === '')
      return gatewayRefusal('X-Domain-Id is required for a global service under AK/SK');
    if (domainId !== this.#world.seed.account.id)
      return gatewayRefusal('X-Domain-Id does not match the account of the access key');
    return caller;
  }

  #byToken(token: string, service: Service): string | Failure {
    const staticToken = this.#world.seed.serviceAccount.staticToken;
    if (staticToken !== undefined && token === staticToken) return this.#world.serviceAccountId;
    const issued = this.#tokens.get(token);
    if (issued === undefined) return badToken(service);
    if (this.#now() >= issued.expiresAt) {
      this.#tokens.delete(token);
      return badToken(service);
    }
    return issued.userId;
  }

  #bySignature(request: SignedRequest, authorization: string): string | Failure {
    const parts = parseAuthorization(authorization);
    if (parts === undefined) return gatewayRefusal('malformed Authorization header');
    const credential = this.#world.seed.credentials?.find((c) => c.ak === parts.access);
    if (credential === undefined) return gatewayRefusal('unknown access key');
    const now = this.#now();
    const lockout = this.#lockouts.get(credential.ak) ?? { failures: 0, lockedUntil: 0 };
    if (lockout.lockedUntil > now) return gatewayRefusal('access key locked after too many bad signatures');
    if (lockout.lockedUntil !== 0) this.#lockouts.delete(credential.ak);

    const sdkDate = request.headers['x-sdk-date'];
    const signedAt = typeof sdkDate === 'string' ? parseSdkDate(sdkDate) : undefined;
    if (typeof sdkDate !== 'string' || signedAt === undefined)
      return gatewayRefusal('missing or malformed X-Sdk-Date');
    if (Math.abs(now - signedAt) > maxSkewMs) return gatewayRefusal('X-Sdk-Date is more than 15 minutes off');
    if (
      credential.securityToken !== undefined &&
      request.headers['x-security-token'] !== credential.securityToken
    )
      return gatewayRefusal('missing or wrong X-Security-Token');

    if (!signatureMatches(request, parts, sdkDate, credential.sk)) {
      const failures = (this.#lockouts.get(credential.ak)?.failures ?? 0) + 1;
      this.#lockouts.set(credential.ak, {
        failures,
        lockedUntil: failures > maxBadSignatures ? now + lockMs : 0,
      });
      return gatewayRefusal('verify aksk signature fail');
    }
    this.#lockouts.delete(credential.ak);
    return credential.userId;
  }
}

export type { Service };
export { Authenticator, badToken };

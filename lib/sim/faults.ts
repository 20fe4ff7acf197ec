/**
 * Fault injection: the ways real Huawei Cloud (and whatever stands between it and the client)
 * answers other than the contract says. Rates are per-request probabilities drawn from a seedable
 * PRNG so a failing run can be replayed; rules (`failTargets`) pin a fault to a target, method
 * or kind of call, optionally a limited number of `times`.
 *
 * The phases follow a request through the real stack: the API gateway (hang, reset, quota,
 * gateway errors, throttling) before authentication; SWR's own failures after it; then what a
 * successful answer may turn into on the way back (a malformed body, a write that lies).
 */

import { seededRandom } from '../random.ts';
import { type ErrorShape, ErrorShapes, type Failure, failure } from './replies.ts';

type CallKind = 'repo' | 'namespace' | 'list' | 'iam';

/** Successful GET answers that break the documented shape. */
const MalformedVariants = [
  'others-missing',
  'others-null',
  'others-not-array',
  'auth-string',
  'auth-unknown',
  'user-id-number',
  'user-id-missing',
  'list-not-array',
  'list-name-missing',
  'list-name-number',
  'html',
  'truncated',
  'empty',
  'plain-text',
] as const;

type MalformedVariant = (typeof MalformedVariants)[number];

/** Answers of the API gateway (or a proxy in front of it) instead of the service. */
const GatewayVariants = [
  'not-published',
  'unauthorized',
  'throttled',
  'bad-gateway',
  'unavailable',
  'gateway-timeout',
] as const;

type GatewayVariant = (typeof GatewayVariants)[number];

/** A write answered 2xx that did not do what it said: nothing changed, or an HTML page came back. */
const LyingWrites = ['ghost', 'html-applied', 'html-not-applied'] as const;

type LyingWrite = (typeof LyingWrites)[number];

/**
 * A rule for matching calls: every match field given must match. Its effect is the first one set
 * of `gateway`, `malformed`, `lie`, `echo`; with none, the call fails with `status`/`code`.
 */
interface FailTarget {
  /** Target key: `ns/repo` for a repository, `ns` for a namespace or a list of that namespace; IAM: `tokens`, `users/<id>`, `users?name=<name>`. */
  target?: string;
  /** HTTP method, e.g. `DELETE`. */
  method?: string;
  /** Which kind of call. A rule with `kind: 'iam'` applies to IAM even without `iamFaults`. */
  kind?: CallKind;
  /** Default 403. */
  status?: number;
  /** Default: a code that fits the status (403 → SVCSTG.SWR.4039001). */
  code?: string;
  gateway?: GatewayVariant;
  /** Only on a successful GET of access or of a repository list. */
  malformed?: MalformedVariant;
  /** Only on a successful POST, PATCH or DELETE. */
  lie?: LyingWrite;
  /** Fail with an error body that quotes the request's credentials (X-Auth-Token, Authorization, body). */
  echo?: boolean;
  /** Fires this many times, then is spent; unlimited when absent. */
  times?: number;
}

/** Rules are the same thing under a name that says what they have become. */
type FaultRule = FailTarget;

/** A token bucket per account across every SWR call, as the gateway's request quota. */
interface QuotaConfig {
  ratePerSecond: number;
  burst: number;
  /** `Retry-After` sent with the 429; none when absent. */
  retryAfterSeconds?: number;
}

interface FaultConfig {
  /** 500 SVCSTG.SWR.5000090. */
  error5xxRate: number;
  /** 429 APIGW.0308 (gateway throttling, before authentication). */
  throttle429Rate: number;
  /** 409 SVCSTG.SWR.4090023 system busy (bare-array body). */
  busy409Rate: number;
  /** 403 SVCSTG.SWR.4031032 too many requests. */
  tooMany403Rate: number;
  /** Added to every faultable request. */
  latencyMs: number;
  /** Never answer (until close). */
  hangRate: number;
  /** Destroy the socket without an answer. */
  resetRate: number;
  failTargets: FailTarget[];
  /** `Retry-After` on 429: a fixed number of seconds, never, or every other 429 with `1`. */
  retryAfterSeconds: number | 'alternate' | 'never';
  /** PRNG seed; `undefined` picks one at random. */
  seed: number | undefined;
  /** Apply the rates to IAM calls too. */
  iamFaults: boolean;
  /** A successful GET of access or of a list answered with a malformed body. */
  malformedRate: number;
  /** The variants `malformedRate` picks from (those that fit the call); default all. */
  malformedVariants: MalformedVariant[];
  /** A gateway error instead of the service's answer. */
  gatewayRate: number;
  /** The variants `gatewayRate` picks from; default all. */
  gatewayVariants: GatewayVariant[];
  /** A successful write answered 2xx with nothing changed. */
  ghostWriteRate: number;
  /** A successful write answered 2xx with an HTML page, applied or not (a coin decides). */
  htmlSuccessRate: number;
  /** Request quota of the account; `undefined` = unlimited. */
  quota: QuotaConfig | undefined;
}

interface Call {
  method: string;
  kind: CallKind;
  target: string;
}

type EarlyFault =
  | { kind: 'hang' }
  | { kind: 'reset' }
  | { kind: 'fail'; failure: Failure }
  | { kind: 'page'; status: number; html: string };

/** A failure whose body quotes the request (the server builds it: only it has the request). */
interface EchoFault {
  kind: 'echo';
  status: number;
  code: string;
}

const defaultFaults = (): FaultConfig => ({
  error5xxRate: 0,
  throttle429Rate: 0,
  busy409Rate: 0,
  tooMany403Rate: 0,
  latencyMs: 0,
  hangRate: 0,
  resetRate: 0,
  failTargets: [],
  retryAfterSeconds: 'alternate',
  seed: undefined,
  iamFaults: false,
  malformedRate: 0,
  malformedVariants: [...MalformedVariants],
  gatewayRate: 0,
  gatewayVariants: [...GatewayVariants],
  ghostWriteRate: 0,
  htmlSuccessRate: 0,
  quota: undefined,
});

const defaultCodes: Record<number, string> = {
  400: 'SVCSTG.SWR.4000014',
  401: 'SVCSTG.SWR.4010000',
  403: 'SVCSTG.SWR.4039001',
  404: 'SVCSTG.SWR.4040010',
  409: 'SVCSTG.SWR.4090023',
  429: 'APIGW.0308',
  500: 'SVCSTG.SWR.5000090',
};

/** Gateway and rate errors come flat, "busy" as a bare array, the rest in the SWR shape. */
const shapeOf = (code: string): ErrorShape =>
  code === 'SVCSTG.SWR.4090023'
    ? ErrorShapes.bare
    : code.startsWith('APIGW.') || code.startsWith('IAM.') || code === 'SVCSTG.SWR.4031032'
      ? ErrorShapes.flat
      : ErrorShapes.swr;

const codeFor = (status: number, code: string | undefined): string =>
  code ?? defaultCodes[status] ?? `SVCSTG.SWR.${status}0000`;

const ruleFailure = (rule: FailTarget): Failure => {
  const status = rule.status ?? 403;
  const code = codeFor(status, rule.code);
  return failure(status, code, `injected permanent failure (${code})`, shapeOf(code));
};

const throttled = (retryAfter: number | undefined): Failure =>
  failure(
    429,
    'APIGW.0308',
    'The throttling threshold has been reached: policy user over ratelimit',
    ErrorShapes.flat,
    retryAfter === undefined ? undefined : { 'Retry-After': String(retryAfter) },
  );

/** A proxy's error page, as nginx-style front ends send them. */
const proxyPage = (status: number, reason: string): string =>
  `<!DOCTYPE html>\n<html>\n<head><title>${status} ${reason}</title></head>\n<body>\n<center><h1>${status} ${reason}</h1></center>\n<hr><center>nginx</center>\n</body>\n</html>\n`;

const gatewayFault = (variant: GatewayVariant, retryAfter: number | undefined): EarlyFault => {
  switch (variant) {
    case 'not-published':
      return {
        kind: 'fail',
        failure: failure(
          404,
          'APIGW.0101',
          'The API does not exist or has not been published in the environment',
          ErrorShapes.flat,
        ),
      };
    case 'unauthorized':
      return {
        kind: 'fail',
        failure: failure(
          401,
          'APIGW.0301',
          'Incorrect IAM authentication information: decrypt token fail',
          ErrorShapes.flat,
        ),
      };
    case 'throttled':
      return { kind: 'fail', failure: throttled(retryAfter) };
    case 'bad-gateway':
      return { kind: 'page', status: 502, html: proxyPage(502, 'Bad Gateway') };
    case 'unavailable':
      return { kind: 'page', status: 503, html: proxyPage(503, 'Service Temporarily Unavailable') };
    case 'gateway-timeout':
      return { kind: 'page', status: 504, html: proxyPage(504, 'Gateway Time-out') };
  }
};

const accessVariants: ReadonlySet<MalformedVariant> = new Set([
  'others-missing',
  'others-null',
  'others-not-array',
  'auth-string',
  'auth-unknown',
  'user-id-number',
  'user-id-missing',
]);
const listVariants: ReadonlySet<MalformedVariant> = new Set([
  'list-not-array',
  'list-name-missing',
  'list-name-number',
]);

/** Whether a variant makes sense for a kind of call (the raw-text variants fit every GET). */
const fits = (variant: MalformedVariant, kind: CallKind): boolean =>
  kind === 'list' ? !accessVariants.has(variant) : kind === 'iam' ? false : !listVariants.has(variant);

class FaultInjector {
  #config: FaultConfig;
  #random: () => number;
  #throttled = 0;
  readonly #now: () => number;
  readonly #spent = new Map<FailTarget, number>();
  #bucket: { tokens: number; at: number } | undefined;

  constructor(config: Partial<FaultConfig> = {}, now: () => number = Date.now) {
    this.#config = { ...defaultFaults(), ...config };
    this.#random = seededRandom(this.#config.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.#now = now;
  }

  /** Merges `config` into the current faults; a new `seed` restarts the dice, a new `quota` a full bucket. */
  set(config: Partial<FaultConfig>): void {
    this.#config = { ...this.#config, ...config };
    if (config.seed !== undefined) this.#random = seededRandom(config.seed);
    if ('quota' in config) this.#bucket = undefined;
    if (config.failTargets !== undefined) this.#spent.clear();
  }

  get latencyMs(): number {
    return this.#config.latencyMs;
  }

  get iamFaults(): boolean {
    return this.#config.iamFaults;
  }

  /** Whether anything at all may happen to this call (dice for IAM only with `iamFaults`). */
  applies(call: Call): boolean {
    return (
      call.kind !== 'iam' || this.#config.iamFaults || this.#config.failTargets.some((r) => r.kind === 'iam')
    );
  }

  /**
   * What the gateway does before authentication: hang, reset, the account's quota, a gateway error
   * (rule or dice), throttling.
   */
  early(call: Call): EarlyFault | undefined {
    const c = this.#config;
    const dice = this.#dice(call);
    if (dice && this.#roll(c.hangRate)) return { kind: 'hang' };
    if (dice && this.#roll(c.resetRate)) return { kind: 'reset' };
    if (call.kind !== 'iam' && !this.#takeQuota())
      return { kind: 'fail', failure: throttled(c.quota?.retryAfterSeconds) };
    const rule = this.#rule(call, (r) => r.gateway !== undefined);
    if (rule?.gateway !== undefined) return gatewayFault(rule.gateway, this.#retryAfter());
    if (dice && c.gatewayVariants.length > 0 && this.#roll(c.gatewayRate))
      return gatewayFault(this.#pick(c.gatewayVariants), this.#retryAfter());
    if (dice && this.#roll(c.throttle429Rate))
      return { kind: 'fail', failure: throttled(this.#retryAfter()) };
    return undefined;
  }

  /** Permanent rules and echoes, then 5xx, busy and too-many: decided once the caller is known. */
  late(call: Call): Failure | EchoFault | undefined {
    const c = this.#config;
    const rule = this.#rule(
      call,
      (r) => r.gateway === undefined && r.malformed === undefined && r.lie === undefined,
    );
    if (rule?.echo === true) {
      const status = rule.status ?? 400;
      return { kind: 'echo', status, code: codeFor(status, rule.code) };
    }
    if (rule !== undefined) return ruleFailure(rule);
    if (!this.#dice(call)) return undefined;
    if (this.#roll(c.error5xxRate)) return failure(500, 'SVCSTG.SWR.5000090', 'internal error (injected)');
    if (this.#roll(c.busy409Rate))
      return failure(409, 'SVCSTG.SWR.4090023', 'system busy, try again later (injected)', ErrorShapes.bare);
    if (this.#roll(c.tooMany403Rate))
      return failure(403, 'SVCSTG.SWR.4031032', 'too many requests (injected)', ErrorShapes.flat);
    return undefined;
  }

  /** How a write will lie if it succeeds (decided before it runs, so a ghost can be undone). */
  lie(call: Call): LyingWrite | undefined {
    if (call.kind === 'iam' || call.method === 'GET') return undefined;
    const rule = this.#rule(call, (r) => r.lie !== undefined);
    if (rule?.lie !== undefined) return rule.lie;
    if (this.#roll(this.#config.ghostWriteRate)) return 'ghost';
    if (this.#roll(this.#config.htmlSuccessRate))
      return this.#roll(0.5) ? 'html-applied' : 'html-not-applied';
    return undefined;
  }

  /** The malformed body a successful GET of access or of a list gets, if any. */
  malformed(call: Call): MalformedVariant | undefined {
    if (call.method !== 'GET' || call.kind === 'iam') return undefined;
    const rule = this.#rule(call, (r) => r.malformed !== undefined && fits(r.malformed, call.kind));
    if (rule?.malformed !== undefined) return rule.malformed;
    const variants = this.#config.malformedVariants.filter((v) => fits(v, call.kind));
    if (variants.length === 0 || !this.#roll(this.#config.malformedRate)) return undefined;
    return this.#pick(variants);
  }

  #dice(call: Call): boolean {
    return call.kind !== 'iam' || this.#config.iamFaults;
  }

  /** The first live rule that matches the call and passes `effect`; spends one of its `times`. */
  #rule(call: Call, effect: (rule: FailTarget) => boolean): FailTarget | undefined {
    const rule = this.#config.failTargets.find(
      (r) =>
        effect(r) &&
        (r.target === undefined || r.target === call.target) &&
        (r.method === undefined || r.method.toUpperCase() === call.method) &&
        (r.kind === undefined ? call.kind !== 'iam' || this.#config.iamFaults : r.kind === call.kind) &&
        (r.times === undefined || (this.#spent.get(r) ?? 0) < r.times),
    );
    if (rule?.times !== undefined) this.#spent.set(rule, (this.#spent.get(rule) ?? 0) + 1);
    return rule;
  }

  /** One token from the account's bucket; false when it is empty. */
  #takeQuota(): boolean {
    const quota = this.#config.quota;
    if (quota === undefined) return true;
    const now = this.#now();
    const bucket = this.#bucket ?? { tokens: quota.burst, at: now };
    bucket.tokens = Math.min(
      quota.burst,
      bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * quota.ratePerSecond,
    );
    bucket.at = now;
    this.#bucket = bucket;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  #retryAfter(): number | undefined {
    const setting = this.#config.retryAfterSeconds;
    this.#throttled += 1;
    if (typeof setting === 'number') return setting;
    return setting === 'alternate' && this.#throttled % 2 === 1 ? 1 : undefined;
  }

  #pick<T>(items: readonly T[]): T {
    return items[Math.min(items.length - 1, Math.floor(this.#random() * items.length))] as T;
  }

  #roll(rate: number): boolean {
    return rate > 0 && this.#random() < rate;
  }
}

export type {
  Call,
  CallKind,
  EarlyFault,
  EchoFault,
  FailTarget,
  FaultConfig,
  FaultRule,
  GatewayVariant,
  LyingWrite,
  MalformedVariant,
  QuotaConfig,
};
export { defaultFaults, FaultInjector, GatewayVariants, LyingWrites, MalformedVariants };

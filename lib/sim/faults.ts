/**
 * Fault injection for the SWR permission and list calls (and IAM when `iamFaults`). Rates are
 * per-request probabilities drawn from a seedable PRNG so a failing run can be replayed.
 */

import { seededRandom } from '../random.ts';
import { type ErrorShape, ErrorShapes, type Failure, failure } from './replies.ts';

/** A rule that always fails matching calls: every field given must match. */
interface FailTarget {
  /** Target key: `ns/repo` for a repository, `ns` for a namespace or a list of that namespace. */
  target?: string;
  /** HTTP method, e.g. `DELETE`. */
  method?: string;
  /** Which kind of call: repository or namespace permissions, a repository list, or IAM (with `iamFaults`). */
  kind?: CallKind;
  /** Default 403. */
  status?: number;
  /** Default: a code that fits the status (403 → SVCSTG.SWR.4039001). */
  code?: string;
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
  /** Apply faults to IAM calls too. */
  iamFaults: boolean;
}

type CallKind = 'repo' | 'namespace' | 'list' | 'iam';

interface Call {
  method: string;
  kind: CallKind;
  target: string;
}

type EarlyFault = { kind: 'hang' } | { kind: 'reset' } | { kind: 'fail'; failure: Failure };

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
    : code.startsWith('APIGW.') || code === 'SVCSTG.SWR.4031032'
      ? ErrorShapes.flat
      : ErrorShapes.swr;

const ruleFailure = (rule: FailTarget): Failure => {
  const status = rule.status ?? 403;
  const code = rule.code ?? defaultCodes[status] ?? `SVCSTG.SWR.${status}0000`;
  return failure(status, code, `injected permanent failure (${code})`, shapeOf(code));
};

class FaultInjector {
  #config: FaultConfig;
  #random: () => number;
  #throttled = 0;

  constructor(config: Partial<FaultConfig> = {}) {
    this.#config = { ...defaultFaults(), ...config };
    this.#random = seededRandom(this.#config.seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  /** Merges `config` into the current faults; a new `seed` restarts the dice. */
  set(config: Partial<FaultConfig>): void {
    this.#config = { ...this.#config, ...config };
    if (config.seed !== undefined) this.#random = seededRandom(config.seed);
  }

  get latencyMs(): number {
    return this.#config.latencyMs;
  }

  get iamFaults(): boolean {
    return this.#config.iamFaults;
  }

  /** Hang, reset or gateway throttling: decided before authentication, as a gateway would. */
  early(): EarlyFault | undefined {
    const c = this.#config;
    if (this.#roll(c.hangRate)) return { kind: 'hang' };
    if (this.#roll(c.resetRate)) return { kind: 'reset' };
    if (!this.#roll(c.throttle429Rate)) return undefined;
    this.#throttled += 1;
    const retryAfter =
      typeof c.retryAfterSeconds === 'number'
        ? c.retryAfterSeconds
        : c.retryAfterSeconds === 'alternate' && this.#throttled % 2 === 1
          ? 1
          : undefined;
    return {
      kind: 'fail',
      failure: failure(
        429,
        'APIGW.0308',
        'The throttling threshold has been reached: policy user over ratelimit',
        ErrorShapes.flat,
        retryAfter === undefined ? undefined : { 'Retry-After': String(retryAfter) },
      ),
    };
  }

  /** Permanent rules, then 5xx, busy and too-many: decided once the caller is known. */
  late(call: Call): Failure | undefined {
    const c = this.#config;
    const rule = c.failTargets.find(
      (r) =>
        (r.target === undefined || r.target === call.target) &&
        (r.method === undefined || r.method.toUpperCase() === call.method) &&
        (r.kind === undefined || r.kind === call.kind),
    );
    if (rule !== undefined) return ruleFailure(rule);
    if (this.#roll(c.error5xxRate)) return failure(500, 'SVCSTG.SWR.5000090', 'internal error (injected)');
    if (this.#roll(c.busy409Rate))
      return failure(409, 'SVCSTG.SWR.4090023', 'system busy, try again later (injected)', ErrorShapes.bare);
    if (this.#roll(c.tooMany403Rate))
      return failure(403, 'SVCSTG.SWR.4031032', 'too many requests (injected)', ErrorShapes.flat);
    return undefined;
  }

  #roll(rate: number): boolean {
    return rate > 0 && this.#random() < rate;
  }
}

export type { Call, CallKind, EarlyFault, FailTarget, FaultConfig };
export { defaultFaults, FaultInjector };

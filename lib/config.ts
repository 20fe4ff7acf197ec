/**
 * Configuration, read once at cold start from the environment. Every problem is collected and
 * reported together (a deploy with three typos should fail once, not three times), and the values
 * of secret variables never appear in any message.
 */

import { ConfigError } from './errors.ts';
import { parseS3Uri, type S3ObjectRef } from './policy-source/s3-uri.ts';
import { registerSecrets } from './redact.ts';
import type { AuthConfig } from './swr/auth.ts';
import { assertEndpoint } from './swr/endpoint.ts';
import { defaultRateLimit } from './swr/rate-limit.ts';
import * as z from './zod.ts';

/** Credentials still to be fetched from Secrets Manager (a JSON object with the same env keys). */
type CredentialsSource = AuthConfig | { kind: 'secret'; secretArn: string };

interface AppConfig {
  swrEndpoint: string;
  iamEndpoint: string;
  credentials: CredentialsSource;
  /** DynamoDB membership table; absent means the in-memory store (CLI only). */
  tableName: string | undefined;
  dlqUrls: {
    accessChanges: string | undefined;
    offboarding: string | undefined;
    offboardingSweeps: string | undefined;
  };
  /**
   * The queue of offboarding sweep requests: the queue handlers send a leaver's sweep there once
   * the known grants are revoked. Absent (the CLI, tests): the pipeline sweeps inline.
   */
  sweepQueueUrl: string | undefined;
  /** The policy file; '' when the policy comes from S3 (`policyS3`) and no file is named. */
  policyFile: string;
  /** The policy as a versioned S3 object (POLICY_S3_URI); when set, it is read instead of the file. */
  policyS3: S3ObjectRef | undefined;
  /** Least time between two checks of the S3 policy object for a new version. */
  policyReloadSeconds: number;
  /** SWR calls in flight at once, across targets. */
  swrConcurrency: number;
  /**
   * Pace of every SWR request of this instance, retries included (not IAM): `ratePerSecond` is the
   * ceiling; `adaptive` cuts it on throttling answers and raises it back (AIMD).
   */
  swrRateLimit: { ratePerSecond: number; burst: number; adaptive: boolean };
  retry: { maxAttempts: number; baseDelayMs: number; maxDelayMs: number };
  requestTimeoutMs: number;
  /** Time kept back from the Lambda deadline to answer SQS. */
  safetyMarginMs: number;
  dryRun: boolean;
  massRevoke: { maxCount: number; maxShare: number; floor: number };
  /** SWR calls in flight for the offboarding sweep, apart from the batch's. */
  sweepConcurrency: number;
  /** How far ahead an event's `effectiveAt` may be, in days. */
  effectiveAtMaxDays: number;
}

/** Environment variables whose values are secrets: never echoed, not even when malformed. */
const secretVariables = new Set([
  'SWR_AUTH_TOKEN',
  'HUAWEICLOUD_IAM_PASSWORD',
  'HUAWEICLOUD_SDK_SK',
  'HUAWEICLOUD_SECURITY_TOKEN',
]);

const trimmed = z.pipe(
  z.transform((value) => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined)),
  z.optional(z.string()),
);
const intIn = (min: number, max: number, fallback: number) =>
  z.pipe(
    z.transform((value) =>
      typeof value === 'string' && value.trim() !== '' ? Number(value.trim()) : undefined,
    ),
    z._default(z.int().check(z.gte(min), z.lte(max)), fallback),
  );
const shareOf = (fallback: number) =>
  z.pipe(
    z.transform((value) =>
      typeof value === 'string' && value.trim() !== '' ? Number(value.trim()) : undefined,
    ),
    z._default(z.number().check(z.gte(0), z.lte(1)), fallback),
  );
// zod/mini types stringbool's input as unknown, which pipe() will not take after a string.
const stringbool = z.stringbool() as unknown as z.ZodMiniType<boolean, string>;
const boolOr = (fallback: boolean) =>
  z.pipe(
    z.transform((value) =>
      typeof value === 'string' && value.trim() !== '' ? value.trim() : String(fallback),
    ),
    stringbool,
  );
const bool = boolOr(false);

const envSchema = z.object({
  SWR_ENDPOINT: trimmed,
  IAM_ENDPOINT: trimmed,
  SWR_CREDENTIALS_SECRET_ARN: trimmed,
  SWR_AUTH_TOKEN: trimmed,
  HUAWEICLOUD_IAM_DOMAIN: trimmed,
  HUAWEICLOUD_IAM_USER: trimmed,
  HUAWEICLOUD_IAM_PASSWORD: trimmed,
  HUAWEICLOUD_PROJECT: trimmed,
  HUAWEICLOUD_IAM_AGENCY_DOMAIN: trimmed,
  HUAWEICLOUD_IAM_AGENCY: trimmed,
  HUAWEICLOUD_SDK_AK: trimmed,
  HUAWEICLOUD_SDK_SK: trimmed,
  HUAWEICLOUD_PROJECT_ID: trimmed,
  HUAWEICLOUD_DOMAIN_ID: trimmed,
  HUAWEICLOUD_SECURITY_TOKEN: trimmed,
  TABLE_NAME: trimmed,
  ACCESS_CHANGES_DLQ_URL: trimmed,
  OFFBOARDING_DLQ_URL: trimmed,
  OFFBOARDING_SWEEPS_DLQ_URL: trimmed,
  OFFBOARDING_SWEEPS_QUEUE_URL: trimmed,
  POLICY_FILE: trimmed,
  POLICY_S3_URI: trimmed,
  POLICY_RELOAD_SECONDS: intIn(1, 86_400, 60),
  SWR_MAX_CONCURRENCY: intIn(1, 64, 8),
  // The ceiling of one instance's rate; the account's quota is shared by backing off on 429s.
  SWR_MAX_RPS: intIn(1, 10_000, defaultRateLimit.ratePerSecond),
  SWR_BURST: intIn(1, 10_000, defaultRateLimit.burst),
  SWR_ADAPTIVE_RATE: boolOr(defaultRateLimit.adaptive),
  RETRY_MAX_ATTEMPTS: intIn(1, 10, 4),
  RETRY_BASE_DELAY_MS: intIn(1, 60_000, 200),
  RETRY_MAX_DELAY_MS: intIn(1, 120_000, 5_000),
  REQUEST_TIMEOUT_MS: intIn(100, 120_000, 10_000),
  SAFETY_MARGIN_MS: intIn(0, 120_000, 5_000),
  DRY_RUN: bool,
  MASS_REVOKE_MAX_COUNT: intIn(0, 1_000_000, 50),
  MASS_REVOKE_MAX_SHARE: shareOf(0.2),
  MASS_REVOKE_FLOOR: intIn(0, 1_000_000, 10),
  SWEEP_CONCURRENCY: intIn(1, 64, 16),
  EFFECTIVE_AT_MAX_DAYS: intIn(1, 3_650, 400),
});

type Env = z.infer<typeof envSchema>;

/** The shared endpoint rule (https, or http on loopback; no credentials, path or query), as problems. */
const endpointProblems = (name: string, value: string | undefined): string[] => {
  if (value === undefined) return [`${name} is required`];
  try {
    assertEndpoint(value, name);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems.length > 0
      ? error.problems.map((problem) => `${name} ${problem}`)
      : [error.message];
  }
};

const credentialsOf = (env: Env, problems: string[]): CredentialsSource | undefined => {
  const kinds = [
    env.SWR_CREDENTIALS_SECRET_ARN !== undefined && 'SWR_CREDENTIALS_SECRET_ARN',
    env.SWR_AUTH_TOKEN !== undefined && 'SWR_AUTH_TOKEN',
    (env.HUAWEICLOUD_SDK_AK ?? env.HUAWEICLOUD_SDK_SK) !== undefined && 'HUAWEICLOUD_SDK_AK/SK',
    (env.HUAWEICLOUD_IAM_USER ?? env.HUAWEICLOUD_IAM_PASSWORD) !== undefined &&
      'HUAWEICLOUD_IAM_USER/PASSWORD',
  ].filter((kind): kind is string => kind !== false);
  if (kinds.length === 0) {
    problems.push(
      'no credentials: set SWR_CREDENTIALS_SECRET_ARN, SWR_AUTH_TOKEN, HUAWEICLOUD_SDK_AK + HUAWEICLOUD_SDK_SK, or HUAWEICLOUD_IAM_USER + HUAWEICLOUD_IAM_PASSWORD',
    );
    return undefined;
  }
  if (kinds.length > 1) {
    problems.push(`more than one kind of credentials is set (${kinds.join(', ')}): keep exactly one`);
    return undefined;
  }
  if (env.SWR_CREDENTIALS_SECRET_ARN !== undefined) {
    if (!/^arn:aws[\w-]*:secretsmanager:/.test(env.SWR_CREDENTIALS_SECRET_ARN))
      problems.push('SWR_CREDENTIALS_SECRET_ARN is not a Secrets Manager ARN');
    return { kind: 'secret', secretArn: env.SWR_CREDENTIALS_SECRET_ARN };
  }
  return authFromVariables(env as Record<string, unknown> as Record<string, string | undefined>, problems);
};

const required = (
  env: Record<string, string | undefined>,
  names: string[],
  problems: string[],
  why: string,
) => {
  for (const name of names) if (env[name] === undefined) problems.push(`${name} is required ${why}`);
};

/** Reads one auth kind from env-style keys (the environment, or a Secrets Manager JSON). */
const authFromVariables = (
  env: Record<string, string | undefined>,
  problems: string[],
): AuthConfig | undefined => {
  const before = problems.length;
  if (env.SWR_AUTH_TOKEN !== undefined) return { kind: 'token', token: env.SWR_AUTH_TOKEN };
  if (env.HUAWEICLOUD_SDK_AK !== undefined || env.HUAWEICLOUD_SDK_SK !== undefined) {
    // IAM is a global service: AK/SK calls to it name the account (X-Domain-Id).
    required(
      env,
      ['HUAWEICLOUD_SDK_AK', 'HUAWEICLOUD_SDK_SK', 'HUAWEICLOUD_PROJECT_ID', 'HUAWEICLOUD_DOMAIN_ID'],
      problems,
      'for AK/SK signing',
    );
    if (env.HUAWEICLOUD_DOMAIN_ID !== undefined && !/^[0-9a-f]{32}$/.test(env.HUAWEICLOUD_DOMAIN_ID))
      problems.push(
        'HUAWEICLOUD_DOMAIN_ID must be the account ID (32 lowercase hexadecimal characters), not its name',
      );
    if (problems.length > before) return undefined;
    return {
      kind: 'aksk',
      ak: env.HUAWEICLOUD_SDK_AK!,
      sk: env.HUAWEICLOUD_SDK_SK!,
      projectId: env.HUAWEICLOUD_PROJECT_ID!,
      domainId: env.HUAWEICLOUD_DOMAIN_ID!,
      securityToken: env.HUAWEICLOUD_SECURITY_TOKEN,
    };
  }
  required(
    env,
    ['HUAWEICLOUD_IAM_DOMAIN', 'HUAWEICLOUD_IAM_USER', 'HUAWEICLOUD_IAM_PASSWORD', 'HUAWEICLOUD_PROJECT'],
    problems,
    'for an IAM password token',
  );
  if ((env.HUAWEICLOUD_IAM_AGENCY === undefined) !== (env.HUAWEICLOUD_IAM_AGENCY_DOMAIN === undefined))
    problems.push('HUAWEICLOUD_IAM_AGENCY and HUAWEICLOUD_IAM_AGENCY_DOMAIN go together');
  if (problems.length > before) return undefined;
  return {
    kind: 'password',
    domain: env.HUAWEICLOUD_IAM_DOMAIN!,
    user: env.HUAWEICLOUD_IAM_USER!,
    password: env.HUAWEICLOUD_IAM_PASSWORD!,
    project: env.HUAWEICLOUD_PROJECT!,
    agencyDomain: env.HUAWEICLOUD_IAM_AGENCY_DOMAIN,
    agency: env.HUAWEICLOUD_IAM_AGENCY,
  };
};

/** A short value helps fix a typo; a long one may be a secret pasted into the wrong variable. */
const maxShownValueLength = 24;

/** Names a zod issue by its variable; the value is shown only when short and not a secret's. */
const describeIssue = (issue: z.core.$ZodIssue, env: Record<string, string | undefined>): string => {
  const name = String(issue.path[0] ?? 'environment');
  const value = env[name];
  const shown =
    secretVariables.has(name) || (value?.length ?? 0) > maxShownValueLength
      ? '(value hidden)'
      : JSON.stringify(value);
  return `${name}: ${issue.message} (got ${shown})`;
};

interface ReadConfigOptions {
  /** The default policy file: the one bundled with the function. */
  defaultPolicyFile?: string;
  /** Queue handlers need their DLQ and table; the CLI may run without them. */
  require?: { tableName?: boolean; dlqUrls?: boolean };
}

/**
 * Reads and validates the configuration; throws one ConfigError listing every problem.
 *
 * @example const config = readConfig(process.env, { require: { tableName: true, dlqUrls: true } });
 */
const readConfig = (
  source: Record<string, string | undefined>,
  options: ReadConfigOptions = {},
): AppConfig => {
  // First of all: from here on no message, log line or error can carry these values.
  registerSecrets([...secretVariables].map((name) => source[name]));
  const parsed = envSchema.safeParse(source);
  if (!parsed.success)
    throw new ConfigError(
      'invalid configuration',
      parsed.error.issues.map((issue) => describeIssue(issue, source)),
    );
  const env = parsed.data;
  const problems: string[] = [];
  problems.push(...endpointProblems('SWR_ENDPOINT', env.SWR_ENDPOINT));
  problems.push(...endpointProblems('IAM_ENDPOINT', env.IAM_ENDPOINT));
  const credentials = credentialsOf(env, problems);
  if (options.require?.tableName && env.TABLE_NAME === undefined) problems.push('TABLE_NAME is required');
  if (
    options.require?.dlqUrls &&
    env.ACCESS_CHANGES_DLQ_URL === undefined &&
    env.OFFBOARDING_DLQ_URL === undefined
  )
    problems.push('ACCESS_CHANGES_DLQ_URL or OFFBOARDING_DLQ_URL is required');
  if (env.RETRY_MAX_DELAY_MS < env.RETRY_BASE_DELAY_MS)
    problems.push('RETRY_MAX_DELAY_MS must not be smaller than RETRY_BASE_DELAY_MS');
  const policyS3 = env.POLICY_S3_URI === undefined ? undefined : parseS3Uri(env.POLICY_S3_URI);
  if (policyS3?.ok === false) problems.push(`POLICY_S3_URI ${policyS3.problem}`);
  // With the policy in S3, no file is read: none needs naming.
  const policyFile =
    env.POLICY_FILE ?? options.defaultPolicyFile ?? (policyS3 === undefined ? undefined : '');
  if (policyFile === undefined) problems.push('POLICY_FILE is required (or POLICY_S3_URI)');
  if (problems.length > 0 || credentials === undefined || policyFile === undefined)
    throw new ConfigError('invalid configuration', problems);
  return {
    swrEndpoint: env.SWR_ENDPOINT!,
    iamEndpoint: env.IAM_ENDPOINT!,
    credentials,
    tableName: env.TABLE_NAME,
    dlqUrls: {
      accessChanges: env.ACCESS_CHANGES_DLQ_URL,
      offboarding: env.OFFBOARDING_DLQ_URL,
      offboardingSweeps: env.OFFBOARDING_SWEEPS_DLQ_URL,
    },
    sweepQueueUrl: env.OFFBOARDING_SWEEPS_QUEUE_URL,
    policyFile,
    policyS3: policyS3?.ok === true ? policyS3.ref : undefined,
    policyReloadSeconds: env.POLICY_RELOAD_SECONDS,
    swrConcurrency: env.SWR_MAX_CONCURRENCY,
    swrRateLimit: { ratePerSecond: env.SWR_MAX_RPS, burst: env.SWR_BURST, adaptive: env.SWR_ADAPTIVE_RATE },
    retry: {
      maxAttempts: env.RETRY_MAX_ATTEMPTS,
      baseDelayMs: env.RETRY_BASE_DELAY_MS,
      maxDelayMs: env.RETRY_MAX_DELAY_MS,
    },
    requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
    safetyMarginMs: env.SAFETY_MARGIN_MS,
    dryRun: env.DRY_RUN,
    massRevoke: {
      maxCount: env.MASS_REVOKE_MAX_COUNT,
      maxShare: env.MASS_REVOKE_MAX_SHARE,
      floor: env.MASS_REVOKE_FLOOR,
    },
    sweepConcurrency: env.SWEEP_CONCURRENCY,
    effectiveAtMaxDays: env.EFFECTIVE_AT_MAX_DAYS,
  };
};

/**
 * Turns a Secrets Manager JSON (same keys as the environment) into auth settings.
 * The secret's content never reaches an error message: only the names of missing keys do.
 */
const authFromSecret = (secretString: string): AuthConfig => {
  let value: unknown;
  try {
    value = JSON.parse(secretString);
  } catch {
    throw new ConfigError('the credentials secret is not a JSON object', []);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError('the credentials secret is not a JSON object', []);
  const env: Record<string, string | undefined> = {};
  for (const [key, entry] of Object.entries(value))
    if (typeof entry === 'string' && entry.trim() !== '') env[key] = entry.trim();
  registerSecrets([...secretVariables].map((name) => env[name]));
  const problems: string[] = [];
  const auth = authFromVariables(env, problems);
  if (auth === undefined || problems.length > 0)
    throw new ConfigError('the credentials secret is incomplete', problems);
  return auth;
};

export type { AppConfig, AuthConfig, CredentialsSource, ReadConfigOptions };
export { authFromSecret, readConfig, secretVariables };

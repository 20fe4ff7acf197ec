/**
 * The intake function's own configuration (beside the shared one in lib/config.ts): the two source
 * queues, where its secrets come from, and what an Okta suspension means. Read once at cold
 * start; every problem listed at once; secret values never shown.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from '../errors.ts';
import { fifoFlags, type QueueTargets } from '../producer.ts';
import * as z from '../zod.ts';
import type { SuspendAction } from './okta.ts';

/** Where the SCIM token and the Okta hook secret come from. */
type IntakeSecretsSource =
  | { kind: 'secret'; secretArn: string }
  | { kind: 'env'; scimToken: string | undefined; oktaHookSecret: string | undefined };

interface IntakeSecrets {
  /** Absent: the SCIM endpoint answers 401 to everyone. */
  scimToken: string | undefined;
  /** Absent: the Okta hook endpoint answers 401 to everyone. */
  oktaHookSecret: string | undefined;
}

interface IntakeConfig {
  queues: QueueTargets;
  secrets: IntakeSecretsSource;
  suspend: SuspendAction;
}

/** A shorter shared secret can be guessed; identity providers accept long ones. */
const minSecretLength = 32;

const trimmed = z.pipe(
  z.transform((value) => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined)),
  z.optional(z.string()),
);

const envSchema = z.object({
  ACCESS_CHANGES_QUEUE_URL: trimmed,
  OFFBOARDING_QUEUE_URL: trimmed,
  INTAKE_SECRET_ARN: trimmed,
  INTAKE_SCIM_TOKEN: trimmed,
  OKTA_HOOK_SECRET: trimmed,
  OKTA_SUSPEND_ACTION: trimmed,
});

const secretProblems = (name: string, value: string | undefined): string[] =>
  value !== undefined && value.length < minSecretLength
    ? [`${name} must be at least ${minSecretLength} characters (value hidden)`]
    : [];

/**
 * @example const intake = readIntakeConfig(process.env);
 */
const readIntakeConfig = (source: Record<string, string | undefined>): IntakeConfig => {
  const env = envSchema.parse(source);
  const problems: string[] = [];
  for (const name of ['ACCESS_CHANGES_QUEUE_URL', 'OFFBOARDING_QUEUE_URL'] as const)
    if (env[name] === undefined) problems.push(`${name} is required by the intake`);
  const suspend = (env.OKTA_SUSPEND_ACTION ?? 'offboard').toLowerCase();
  if (suspend !== 'offboard' && suspend !== 'ignore')
    problems.push('OKTA_SUSPEND_ACTION must be offboard or ignore');
  if (env.INTAKE_SECRET_ARN !== undefined && (env.INTAKE_SCIM_TOKEN ?? env.OKTA_HOOK_SECRET) !== undefined)
    problems.push('set INTAKE_SECRET_ARN or INTAKE_SCIM_TOKEN/OKTA_HOOK_SECRET, not both');
  if (env.INTAKE_SECRET_ARN !== undefined && !/^arn:aws[\w-]*:secretsmanager:/.test(env.INTAKE_SECRET_ARN))
    problems.push('INTAKE_SECRET_ARN is not a Secrets Manager ARN');
  problems.push(...secretProblems('INTAKE_SCIM_TOKEN', env.INTAKE_SCIM_TOKEN));
  problems.push(...secretProblems('OKTA_HOOK_SECRET', env.OKTA_HOOK_SECRET));
  if (problems.length > 0) throw new ConfigError('invalid intake configuration', problems);
  const fifo = fifoFlags();
  return {
    queues: {
      accessChanges: { url: env.ACCESS_CHANGES_QUEUE_URL as string, fifo: fifo.accessChanges },
      offboarding: { url: env.OFFBOARDING_QUEUE_URL as string, fifo: fifo.offboarding },
    },
    secrets:
      env.INTAKE_SECRET_ARN === undefined
        ? { kind: 'env', scimToken: env.INTAKE_SCIM_TOKEN, oktaHookSecret: env.OKTA_HOOK_SECRET }
        : { kind: 'secret', secretArn: env.INTAKE_SECRET_ARN },
    suspend: suspend as SuspendAction,
  };
};

/**
 * The intake secret (Secrets Manager): `{"scimToken": "…", "oktaHookSecret": "…"}`. Its content
 * never reaches a message: only the names of bad keys do.
 */
const intakeSecretsFromJson = (text: string): IntakeSecrets => {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError('the intake secret is not a JSON object', []);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError('the intake secret is not a JSON object', []);
  const record = value as Record<string, unknown>;
  const read = (key: string): string | undefined =>
    typeof record[key] === 'string' && record[key].trim() !== '' ? record[key].trim() : undefined;
  const secrets = { scimToken: read('scimToken'), oktaHookSecret: read('oktaHookSecret') };
  const problems = [
    ...secretProblems('scimToken', secrets.scimToken),
    ...secretProblems('oktaHookSecret', secrets.oktaHookSecret),
  ];
  if (secrets.scimToken === undefined && secrets.oktaHookSecret === undefined)
    problems.push('the intake secret holds neither scimToken nor oktaHookSecret');
  if (problems.length > 0) throw new ConfigError('the intake secret is not usable', problems);
  return secrets;
};

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/**
 * Compares a presented credential with the expected one in constant time (over digests, so not
 * even the length leaks). False when either is missing.
 *
 * @example sameSecret(request.headers.authorization?.slice(7), secrets.scimToken)
 */
const sameSecret = (presented: string | undefined, expected: string | undefined): boolean => {
  if (presented === undefined || expected === undefined) return false;
  return timingSafeEqual(digest(presented), digest(expected));
};

export type { IntakeConfig, IntakeSecrets, IntakeSecretsSource };
export { intakeSecretsFromJson, minSecretLength, readIntakeConfig, sameSecret };

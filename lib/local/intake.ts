/**
 * The intake function on a running local stack: the real handler wiring
 * (`createIntakeHandler(createIntakeRuntime(…))`, what functions/intake.ts exports) behind the
 * local API Gateway stand-in, with the stack's queues, table, IAM simulator and policy, and
 * secrets of its own (generated unless given).
 */
import { randomBytes } from 'node:crypto';
import { createIntakeHandler } from '../intake/handler.ts';
import { createIntakeRuntime } from '../intake/runtime.ts';
import type { Log, MetricsSink } from '../observability.ts';
import { type IntakeServer, startIntakeServer } from './intake-server.ts';
import { localCredentials, localRegion } from './sqs.ts';
import type { LocalStack } from './stack.ts';

interface LocalIntakeOptions {
  scimToken?: string;
  oktaHookSecret?: string;
  /** Extra environment for the intake (OKTA_SUSPEND_ACTION, POLICY_FILE…). */
  env?: Record<string, string>;
  log?: Log;
  metrics?: MetricsSink;
}

interface LocalIntake extends IntakeServer {
  scimToken: string;
  oktaHookSecret: string;
  /** The environment the intake runs with (secrets included: never print it). */
  env: Record<string, string>;
}

/** A secret as an operator would generate one: 32 random bytes, URL-safe. */
const newSecret = (): string => randomBytes(32).toString('base64url');

/**
 * @example
 * const stack = await startLocalStack();
 * const intake = await startLocalIntake(stack);
 * await fetch(`${intake.url}/scim/v2/Users`, { headers: { authorization: `Bearer ${intake.scimToken}` } });
 */
const startLocalIntake = async (
  stack: LocalStack,
  options: LocalIntakeOptions = {},
): Promise<LocalIntake> => {
  const scimToken = options.scimToken ?? newSecret();
  const oktaHookSecret = options.oktaHookSecret ?? newSecret();
  const env: Record<string, string> = {
    ...stack.env,
    ACCESS_CHANGES_QUEUE_URL: stack.sqs.queues.accessChanges.url,
    OFFBOARDING_QUEUE_URL: stack.sqs.queues.offboarding.url,
    INTAKE_SCIM_TOKEN: scimToken,
    OKTA_HOOK_SECRET: oktaHookSecret,
    ...options.env,
  };
  const runtime = createIntakeRuntime({
    functionName: 'intake',
    env,
    clients: { sqs: stack.sqs.client, dynamo: stack.dynamo.client },
    ...(options.log === undefined ? {} : { log: options.log }),
    ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
  });
  const server = await startIntakeServer({
    handler: createIntakeHandler(runtime),
    credentials: localCredentials,
    region: localRegion,
  });
  return { ...server, scimToken, oktaHookSecret, env };
};

export type { LocalIntake, LocalIntakeOptions };
export { newSecret, startLocalIntake };

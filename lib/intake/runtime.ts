/**
 * The intake function's composition root: configuration read once at cold start (a bad one fails
 * the start, naming every problem); the policy, credentials, intake secrets and clients are built
 * by the first request and kept (a failed build is tried again next time).
 */
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { readConfig } from '../config.ts';
import { createFilePolicyLoader } from '../core/policy.ts';
import type { UserDirectoryPort } from '../domain.ts';
import { ConfigError } from '../errors.ts';
import {
  createPowertoolsLog,
  createPowertoolsMetrics,
  type Log,
  type MetricsSink,
} from '../observability.ts';
import { createEventProducer } from '../producer.ts';
import { registerSecrets } from '../redact.ts';
import { defaultPolicyFile, memoizeRetryable, resolveAuth, swrServicesFor } from '../runtime.ts';
import { type IntakeConfig, type IntakeSecrets, intakeSecretsFromJson, readIntakeConfig } from './config.ts';
import type { IntakeRuntime, IntakeServices } from './handler.ts';
import { createOktaHook } from './okta.ts';
import { createScimService } from './scim/service.ts';

interface IntakeRuntimeOptions {
  functionName: string;
  env?: Record<string, string | undefined>;
  log?: Log;
  metrics?: MetricsSink;
  /** AWS clients (tests, the local stack); by default built from the environment. */
  clients?: { sqs?: SQSClient; dynamo?: DynamoDBClient; secrets?: SecretsManagerClient };
  /** The IAM directory (tests); by default the one of lib/swr over the configured credentials. */
  directory?: UserDirectoryPort;
}

/**
 * Instants that only move forward within the instance: two changes of one membership never share
 * one, so the later request always wins.
 */
const monotonicClock = (now: () => Date = () => new Date()): (() => Date) => {
  let last = 0;
  return () => {
    last = Math.max(now().getTime(), last + 1);
    return new Date(last);
  };
};

/** The secrets from the environment, or from Secrets Manager (a chunk loaded only then). */
const loadIntakeSecrets = async (
  config: IntakeConfig,
  client: SecretsManagerClient | undefined,
): Promise<IntakeSecrets> => {
  if (config.secrets.kind === 'env') return config.secrets;
  const { GetSecretValueCommand, SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
  const answer = await (client ?? new SecretsManagerClient({})).send(
    new GetSecretValueCommand({ SecretId: config.secrets.secretArn }),
  );
  if (answer.SecretString === undefined)
    throw new ConfigError('the intake secret has no string value', [config.secrets.secretArn]);
  return intakeSecretsFromJson(answer.SecretString);
};

/**
 * @example export const handler = createIntakeHandler(createIntakeRuntime({ functionName: 'intake' }));
 */
const createIntakeRuntime = (options: IntakeRuntimeOptions): IntakeRuntime & { config: IntakeConfig } => {
  const serviceName = 'swr-access-sync';
  const env = options.env ?? process.env;
  const log = options.log ?? createPowertoolsLog(serviceName);
  const metrics = options.metrics ?? createPowertoolsMetrics(serviceName);
  const config = readConfig(env, { defaultPolicyFile, require: { tableName: true } });
  const intake = readIntakeConfig(env);
  if (intake.secrets.kind === 'env')
    registerSecrets([intake.secrets.scimToken, intake.secrets.oktaHookSecret]);
  const policyLoader = createFilePolicyLoader(config.policyFile);
  const clock = monotonicClock();

  const build = async (): Promise<IntakeServices> => {
    // The AWS clients and the SCIM store are chunks of their own, loaded while the policy and the
    // secrets are read: a cold start does not parse them before the handler exists.
    const [policy, intakeSecrets, producer, store] = await Promise.all([
      policyLoader.load(),
      loadIntakeSecrets(intake, options.clients?.secrets),
      import('@aws-sdk/client-sqs').then(({ SQSClient }) =>
        createEventProducer({ sqs: options.clients?.sqs ?? new SQSClient({}), queues: intake.queues }),
      ),
      Promise.all([import('@aws-sdk/client-dynamodb'), import('./scim/dynamo-store.ts')]).then(
        ([{ DynamoDBClient }, { createDynamoScimStore }]) =>
          createDynamoScimStore({
            client: options.clients?.dynamo ?? new DynamoDBClient({}),
            tableName: config.tableName as string,
          }),
      ),
    ]);
    registerSecrets([intakeSecrets.scimToken, intakeSecrets.oktaHookSecret]);
    const directory = options.directory ?? (await swrServicesFor(config, resolveAuth(config), metrics)).users;
    log.info('cold start', {
      functionName: options.functionName,
      policyFile: config.policyFile,
      scim: intakeSecrets.scimToken !== undefined,
      oktaHook: intakeSecrets.oktaHookSecret !== undefined,
      identity: policy.identity?.source ?? 'userName',
      fifo: { accessChanges: intake.queues.accessChanges.fifo, offboarding: intake.queues.offboarding.fifo },
    });
    return {
      scim: createScimService({
        store,
        producer,
        directory,
        policy,
        log,
        metrics,
        clock,
        newId: () => randomUUID(),
      }),
      okta: createOktaHook({ directory, policy, log, metrics, suspend: intake.suspend }),
      producer,
      secrets: intakeSecrets,
    };
  };

  return { config: intake, log, metrics, ready: memoizeRetryable(build) };
};

export type { IntakeRuntimeOptions };
export { createIntakeRuntime, monotonicClock };

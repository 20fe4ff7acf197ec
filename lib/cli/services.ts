/**
 * The CLI's composition root: the same configuration, credentials, clients and stores as the
 * functions (`readConfig`, `resolveAuth`, `createSwrServices`, the DynamoDB store), built per
 * command and closed when it ends. The membership store is DynamoDB when TABLE_NAME is set, else
 * memory; which one is always said on stderr, since a memory store forgets everything.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { createDynamoAuditStore, createMemoryAuditStore } from '../audit/index.ts';
import type { AuditStorePort } from '../audit/store.ts';
import { awsClientConfig } from '../aws.ts';
import { type AppConfig, readConfig } from '../config.ts';
import type { MembershipStorePort, Policy, SwrPermissionsPort, UserDirectoryPort } from '../domain.ts';
import { ConfigError } from '../errors.ts';
import { createMemoryTelemetry, type Log, type MetricsSink } from '../observability.ts';
import { createMemorySweepProgress, type SweepProgressPort } from '../offboarding/progress.ts';
import { createPolicyLoader } from '../policy-source/index.ts';
import { resolveAuth } from '../runtime.ts';
import { createDynamoStore, createMemoryStore } from '../store/index.ts';
import { createDynamoSweepProgress } from '../store/sweep-progress.ts';
import { createSwrServices } from '../swr/index.ts';
import { type CliIo, line } from './io.ts';

interface SwrContext {
  config: AppConfig;
  policy: Policy;
  swr: SwrPermissionsPort;
  directory: UserDirectoryPort;
  close(): Promise<void>;
}

interface StoreContext {
  kind: 'dynamodb' | 'memory';
  tableName: string | undefined;
  store: MembershipStorePort;
  audit: AuditStorePort;
  /** Where offboarding sweeps keep their progress (the table, or memory for this run). */
  sweepProgress: SweepProgressPort;
  close(): void;
}

/**
 * Configuration as the functions read it; `--policy` wins over POLICY_FILE and POLICY_S3_URI.
 *
 * @example const config = readCliConfig(io.env, { policyFile: '--policy value', requireTable: true });
 */
const readCliConfig = (
  env: Record<string, string | undefined>,
  options: { policyFile?: string | undefined; requireTable?: boolean } = {},
): AppConfig =>
  readConfig(
    options.policyFile === undefined
      ? env
      : { ...env, POLICY_FILE: options.policyFile, POLICY_S3_URI: undefined },
    { require: { tableName: options.requireTable ?? false } },
  );

/**
 * The policy a command works with: the file, or the S3 object when POLICY_S3_URI is set (read
 * once; a version that is not valid fails the command, naming every problem).
 */
const loadCliPolicy = async (config: AppConfig, io?: Pick<CliIo, 'aws'>): Promise<Policy> => {
  const telemetry = createMemoryTelemetry();
  // A client of our own is destroyed after the one read, so that no socket keeps the process up.
  const own = config.policyS3 !== undefined && io?.aws?.s3 === undefined ? new S3Client({}) : undefined;
  try {
    return await createPolicyLoader(config, {
      log: telemetry.log,
      metrics: telemetry.metrics,
      ...((io?.aws?.s3 ?? own) === undefined ? {} : { s3: io?.aws?.s3 ?? (own as S3Client) }),
    }).load();
  } finally {
    own?.destroy();
  }
};

/** Policy, credentials (Secrets Manager when so configured) and the SWR/IAM clients. */
const openSwr = async (config: AppConfig, io?: Pick<CliIo, 'aws'>): Promise<SwrContext> => {
  const [policy, auth] = await Promise.all([loadCliPolicy(config, io), resolveAuth(config)]);
  const services = createSwrServices({
    swrEndpoint: config.swrEndpoint,
    iamEndpoint: config.iamEndpoint,
    auth,
    retry: config.retry,
    timeouts: { requestTimeoutMs: config.requestTimeoutMs },
    rateLimit: config.swrRateLimit,
  });
  return { config, policy, swr: services.swr, directory: services.users, close: () => services.close() };
};

/** The CLI's bound on one DynamoDB request: a hung endpoint ends the command, not the operator's patience. */
const cliRequestTimeoutMs = 10_000;

/** A DynamoDB client: the one handed in (left open) or one from the environment (destroyed). */
const dynamoClientOf = (io: CliIo): { client: DynamoDBClient; close(): void } => {
  if (io.aws?.dynamo !== undefined) return { client: io.aws.dynamo, close: () => undefined };
  const client = new DynamoDBClient(awsClientConfig(cliRequestTimeoutMs));
  return { client, close: () => client.destroy() };
};

/**
 * The membership store and audit trail for a command, announced on stderr.
 *
 * @example const stores = openStores(config.tableName, io, 'apply');
 */
const openStores = (tableName: string | undefined, io: CliIo, command: string): StoreContext => {
  if (tableName === undefined) {
    line(
      io.stderr,
      `${command}: store: IN MEMORY (TABLE_NAME is not set) — starts empty; membership facts and audit records are NOT kept after this run`,
    );
    return {
      kind: 'memory',
      tableName,
      store: createMemoryStore(),
      audit: createMemoryAuditStore(),
      sweepProgress: createMemorySweepProgress(),
      close: () => undefined,
    };
  }
  line(io.stderr, `${command}: store: DynamoDB table ${tableName}`);
  const dynamo = dynamoClientOf(io);
  return {
    kind: 'dynamodb',
    tableName,
    store: createDynamoStore({ client: dynamo.client, tableName }),
    audit: createDynamoAuditStore({ client: dynamo.client, tableName }),
    sweepProgress: createDynamoSweepProgress({ client: dynamo.client, tableName }),
    close: dynamo.close,
  };
};

/** TABLE_NAME alone (commands that need no SWR access). */
const requireTableName = (env: Record<string, string | undefined>): string => {
  const tableName = env.TABLE_NAME?.trim();
  if (tableName === undefined || tableName === '')
    throw new ConfigError('invalid configuration', ['TABLE_NAME is required']);
  return tableName;
};

/**
 * Logs of a CLI run: kept in memory for the report; with `--verbose`, also one JSON line per
 * record on stderr. Metrics are kept in memory only.
 */
const cliTelemetry = (
  io: CliIo,
  verbose: boolean,
): { log: Log; metrics: MetricsSink } & ReturnType<typeof createMemoryTelemetry> => {
  const memory = createMemoryTelemetry();
  if (!verbose) return memory;
  const echo =
    (level: keyof Log) =>
    (message: string, attributes?: Record<string, unknown>): void => {
      memory.log[level](message, attributes);
      line(io.stderr, JSON.stringify({ level: level.toUpperCase(), message, ...attributes }));
    };
  return {
    ...memory,
    log: { debug: echo('debug'), info: echo('info'), warn: echo('warn'), error: echo('error') },
  };
};

export type { StoreContext, SwrContext };
export {
  cliRequestTimeoutMs,
  cliTelemetry,
  loadCliPolicy,
  openStores,
  openSwr,
  readCliConfig,
  requireTableName,
};

/**
 * The composition root of the queue handlers: configuration is read once per cold start (a bad
 * one fails the start, naming what is wrong). The policy, the credentials and the clients (the
 * SWR client, the table's adapters; chunks of their own in the bundle, imported here) are built by
 * the first invocation, together, and reused by every later invocation of the instance.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { SQSClient } from '@aws-sdk/client-sqs';
import queuesConfig from '../config/queues.json' with { type: 'json' };
import { awsClientConfig, callAws } from './aws.ts';
import { type AppConfig, type AuthConfig, authFromSecret, readConfig } from './config.ts';
import type { PolicyLoader } from './core/policy.ts';
import type { DeadLetterSender } from './dlq.ts';
import type { CallOptions } from './domain.ts';
import { ConfigError, ErrorCodes, SyncError } from './errors.ts';
import {
  createPowertoolsLog,
  createPowertoolsMetrics,
  functionDimensionOf,
  type Log,
  MetricNames,
  type MetricsSink,
} from './observability.ts';
import type { SweepRequestPort } from './offboarding/requests.ts';
import {
  type PipelineDeps,
  type PipelineSettings,
  processRecords,
  processSweepRequests,
} from './pipeline.ts';
import { createPolicyLoader, withPolicy } from './policy-source/index.ts';
import type { BatchProcessor, QueueRuntime } from './sqs-handler.ts';
import type { SwrServices } from './swr/index.ts';

/** A queue of `config/queues.json`: decides the DLQ, the receive limit and the batch routine. */
type QueueName = keyof typeof queuesConfig.queues;

/** The DLQ variable of each queue, for the configuration error that names it. */
const dlqVariables: Record<QueueName, string> = {
  accessChanges: 'ACCESS_CHANGES_DLQ_URL',
  offboarding: 'OFFBOARDING_DLQ_URL',
  offboardingSweeps: 'OFFBOARDING_SWEEPS_DLQ_URL',
};

/** Sweep requests are swept; everything else is people events. */
const processorOf = (queue: QueueName): BatchProcessor =>
  queue === 'offboardingSweeps' ? processSweepRequests : processRecords;

/**
 * The queues a function consumes: its own, and every queue `config/queues.json` gives the same
 * function (the offboard function also reads `offboarding-sweeps`, a second event source).
 */
const queuesOf = (functionName: string, queue: QueueName): QueueName[] => [
  queue,
  ...(Object.keys(queuesConfig.queues) as QueueName[]).filter(
    (other) => other !== queue && queuesConfig.queues[other].function === functionName,
  ),
];

/**
 * Which consumed queue a batch came from, by the records' `eventSourceARN` (the deployed name is
 * `<service>-<stage>-<name>`, the local one `<name>`); `fallback` when it names none of them.
 *
 * @example queueOfSource('arn:aws:sqs:eu-west-1:1:swr-access-sync-dev-offboarding-sweeps', ['offboarding', 'offboardingSweeps'], 'offboarding') // 'offboardingSweeps'
 */
const queueOfSource = (
  eventSourceArn: string | undefined,
  consumed: readonly QueueName[],
  fallback: QueueName,
): QueueName => {
  if (eventSourceArn === undefined) return fallback;
  const name = eventSourceArn.slice(eventSourceArn.lastIndexOf(':') + 1);
  return (
    consumed.find((queue) => {
      const definition = queuesConfig.queues[queue];
      const full = `${definition.name}${definition.fifo ? '.fifo' : ''}`;
      return name === full || name.endsWith(`-${full}`);
    }) ?? fallback
  );
};

const defaultPolicyFile = 'config/policy.yaml';

/**
 * Credentials from the environment, or fetched once from Secrets Manager. The read is bounded by
 * `options.deadline`, else by one `REQUEST_TIMEOUT_MS` from now (the SDK's retries included): a
 * Secrets Manager that never answers fails the cold start, and the next invocation tries again.
 * The Secrets Manager client is a chunk of its own, loaded only when a secret is configured.
 *
 * @example const auth = await resolveAuth(config, { deadline: Date.now() + 5_000 });
 */
const resolveAuth = async (
  config: AppConfig,
  options?: CallOptions & { client?: SecretsManagerClient },
): Promise<AuthConfig> => {
  if (config.credentials.kind !== 'secret') return config.credentials;
  const { secretArn } = config.credentials;
  const { GetSecretValueCommand, SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
  const secrets = options?.client ?? new SecretsManagerClient(awsClientConfig(config.requestTimeoutMs));
  const bounds: CallOptions = {
    deadline: options?.deadline ?? Date.now() + config.requestTimeoutMs,
    ...(options?.signal === undefined ? {} : { signal: options.signal }),
  };
  const answer = await callAws('Secrets Manager GetSecretValue', bounds, (abortSignal) =>
    secrets.send(new GetSecretValueCommand({ SecretId: secretArn }), { abortSignal }),
  );
  if (answer.SecretString === undefined)
    throw new ConfigError('the credentials secret has no string value', [secretArn]);
  return authFromSecret(answer.SecretString);
};

/**
 * The SWR client and IAM directory, with API calls and retries counted as metrics. The client and
 * undici are a chunk of their own, loaded by the first invocation while it reads the policy and
 * the credentials (pass `auth` as the pending read to overlap the two).
 *
 * @example const services = await swrServicesFor(config, resolveAuth(config), metrics);
 */
const swrServicesFor = async (
  config: AppConfig,
  auth: AuthConfig | Promise<AuthConfig>,
  metrics: MetricsSink,
): Promise<SwrServices> => {
  const [{ createSwrServices }, resolved] = await Promise.all([import('./swr/index.ts'), auth]);
  return createSwrServices(
    {
      swrEndpoint: config.swrEndpoint,
      iamEndpoint: config.iamEndpoint,
      auth: resolved,
      retry: config.retry,
      timeouts: { requestTimeoutMs: config.requestTimeoutMs },
      rateLimit: config.swrRateLimit,
    },
    {
      onRequest: () => metrics.count(MetricNames.apiCalls),
      onRetry: () => metrics.count(MetricNames.apiRetries),
      onRateLimitWait: () => metrics.count(MetricNames.rateLimitWaits),
      onRateCut: () => metrics.count(MetricNames.rateCuts),
    },
  );
};

/**
 * What every function's first invocation builds, side by side: the policy, the credentials, the
 * SWR services (their chunk loads meanwhile) and the table's adapters (a chunk too).
 *
 * @example const { policy, auth, services, adapters } = await loadFunctionParts(config, policyLoader, metrics, log);
 */
const loadFunctionParts = async (
  config: AppConfig,
  policyLoader: PolicyLoader,
  metrics: MetricsSink,
  log: Log,
  dynamo?: DynamoDBClient,
) => {
  const reading = resolveAuth(config);
  const [policy, auth, services, adapters] = await Promise.all([
    policyLoader.load(),
    reading,
    swrServicesFor(config, reading, metrics),
    import('./table-adapters.ts').then(({ createTableAdapters }) =>
      createTableAdapters({
        tableName: config.tableName as string,
        requestTimeoutMs: config.requestTimeoutMs,
        log,
        client: dynamo,
      }),
    ),
  ]);
  return { policy, auth, services, adapters };
};
/**
 * Runs `build` once and shares its promise; a failed build (a secret not readable yet) is not
 * kept, so the next invocation tries again instead of failing until the instance is recycled.
 */
const memoizeRetryable = <T>(build: () => Promise<T>): (() => Promise<T>) => {
  let pending: Promise<T> | undefined;
  return () => {
    if (pending === undefined) {
      pending = build();
      pending.catch(() => {
        pending = undefined;
      });
    }
    return pending;
  };
};

/**
 * A dead-letter sender whose code and SQS client load with the first letter: most batches have
 * none, so a cold start does not parse them. A load that fails reports every letter as not sent
 * (those messages are retried, the rest of the batch is answered), as a failed send does.
 *
 * @example const deadLetters = deadLetterSenderOnDemand(async () => createDeadLetterSender({ sqs, queueUrl }));
 */
const deadLetterSenderOnDemand = (load: () => Promise<DeadLetterSender>): DeadLetterSender => {
  const sender = memoizeRetryable(load);
  return {
    async send(letters, failedAt, options) {
      let loaded: DeadLetterSender;
      try {
        loaded = await sender();
      } catch (error) {
        const reason = `the dead-letter sender did not load (${error instanceof Error ? error.message : String(error)})`;
        return { sent: [], failed: letters.map((letter) => ({ messageId: letter.messageId, reason })) };
      }
      return loaded.send(letters, failedAt, options);
    },
  };
};

/**
 * A sweep request sender whose code loads with the first offboarding; a load that fails reports
 * every request as not sent (the offboarding messages are retried), as a failed send does.
 */
const sweepRequestsOnDemand = (load: () => Promise<SweepRequestPort>): SweepRequestPort => {
  const sender = memoizeRetryable(load);
  return {
    async send(requests, options) {
      let loaded: SweepRequestPort;
      try {
        loaded = await sender();
      } catch (error) {
        const reason = `the sweep request sender did not load (${error instanceof Error ? error.message : String(error)})`;
        return {
          failed: requests.map((request) => ({
            userId: request.userId,
            error: new SyncError(reason, { code: ErrorCodes.network, retryable: true }),
          })),
        };
      }
      return loaded.send(requests, options);
    },
  };
};

interface BuildOptions {
  functionName: string;
  /** The function's queue (its DLQ is required); other queues of the function are consumed too. */
  queue: QueueName;
  env?: Record<string, string | undefined>;
  log?: Log;
  metrics?: MetricsSink;
  /** AWS clients (tests, the local stack); by default built from the environment. */
  clients?: { sqs?: SQSClient; dynamo?: DynamoDBClient; s3?: Pick<S3Client, 'send'> };
}

/**
 * Builds a queue handler's runtime. Reading the configuration is synchronous, so an invalid one
 * throws while the module loads (the function fails to start, every problem listed); the rest
 * (policy, secret, clients) is built by the first invocation (`ready()`), once.
 *
 * @example const runtime = createQueueRuntime({ functionName: 'sync', queue: 'accessChanges' });
 */
const createQueueRuntime = (options: BuildOptions): QueueRuntime & { config: AppConfig } => {
  const serviceName = 'swr-access-sync';
  const log = options.log ?? createPowertoolsLog(serviceName);
  const metrics =
    options.metrics ??
    createPowertoolsMetrics(serviceName, {
      functionName: functionDimensionOf(options.functionName, options.env ?? process.env),
    });
  const config = readConfig(options.env ?? process.env, {
    defaultPolicyFile,
    require: { tableName: true, dlqUrls: true },
  });
  const dlqUrl = config.dlqUrls[options.queue];
  if (dlqUrl === undefined)
    throw new ConfigError('invalid configuration', [
      `${dlqVariables[options.queue]} is required for ${options.functionName}`,
    ]);
  const policyLoader = createPolicyLoader(config, {
    log,
    metrics,
    ...(options.clients?.s3 === undefined ? {} : { s3: options.clients.s3 }),
  });
  // Every request bounded by REQUEST_TIMEOUT_MS; every operation also by the batch's deadline.
  const sqsClient = memoizeRetryable(async () => {
    const { SQSClient } = await import('@aws-sdk/client-sqs');
    return options.clients?.sqs ?? new SQSClient(awsClientConfig(config.requestTimeoutMs));
  });
  const consumed = queuesOf(options.functionName, options.queue);
  // A queue without its DLQ configured (another source of the function) still never drops a
  // message: a permanent failure is reported undeliverable and retried until SQS redrives it.
  const deadLettersOf = new Map(
    consumed.flatMap((queue) => {
      const url = config.dlqUrls[queue];
      if (url === undefined) return [];
      const sender = deadLetterSenderOnDemand(async () => {
        const [{ createDeadLetterSender }, sqs] = await Promise.all([import('./dlq.ts'), sqsClient()]);
        return createDeadLetterSender({ sqs, queueUrl: url });
      });
      return [[queue, sender] as const];
    }),
  );
  const sweepRequests =
    config.sweepQueueUrl === undefined
      ? undefined
      : sweepRequestsOnDemand(async () => {
          const [{ createSweepQueue }, sqs] = await Promise.all([
            import('./offboarding/sweep-queue.ts'),
            sqsClient(),
          ]);
          return createSweepQueue({ sqs, queueUrl: config.sweepQueueUrl as string });
        });

  const build = async () => {
    const { policy, auth, services, adapters } = await loadFunctionParts(
      config,
      policyLoader,
      metrics,
      log,
      options.clients?.dynamo,
    );
    const { store, auditStore, sweepProgress, convergeLease } = adapters;
    const deps: PipelineDeps = {
      swr: services.swr,
      directory: services.users,
      store,
      policy,
      deadLetters: deadLettersOf.get(options.queue),
      log,
      metrics,
      audit: (records, options) => auditStore.write(records, options),
      sweepProgress,
      ...(sweepRequests === undefined ? {} : { sweepRequests }),
      // Only access-changes converges under the lease: offboarding must never wait for it.
      ...(options.queue === 'accessChanges' ? { convergeLease } : {}),
      // A leaver IAM already deleted is still found by the name the audit trail recorded.
      knownIdsByName: (name) => auditStore.userIdsByName(name),
      now: () => new Date(),
    };
    const settings: PipelineSettings = {
      actor: options.functionName,
      concurrency: config.swrConcurrency,
      sweepConcurrency: config.sweepConcurrency,
      dryRun: config.dryRun,
      maxReceiveCount: queuesConfig.queues[options.queue].maxReceiveCount,
      maxEffectiveAheadDays: config.effectiveAtMaxDays,
    };
    log.info('cold start', {
      functionName: options.functionName,
      policySource: policy.sourcePath,
      auth: auth.kind,
      dryRun: config.dryRun,
      teams: Object.keys(policy.teams).length,
    });
    return { deps, settings, safetyMarginMs: config.safetyMarginMs };
  };

  const built = memoizeRetryable(build);
  return {
    config,
    log,
    metrics,
    // Every invocation runs with the policy in use now (a new S3 version, once checked and valid),
    // and with the DLQ, receive limit and batch routine of the queue its batch came from.
    ready: async (eventSourceArn) => {
      const ready = withPolicy(await built(), await policyLoader.load());
      const queue = queueOfSource(eventSourceArn, consumed, options.queue);
      if (queue === options.queue) return { ...ready, process: processorOf(queue) };
      return {
        ...ready,
        deps: { ...ready.deps, deadLetters: deadLettersOf.get(queue) },
        settings: { ...ready.settings, maxReceiveCount: queuesConfig.queues[queue].maxReceiveCount },
        process: processorOf(queue),
      };
    },
  };
};

export type { QueueName };
export {
  createQueueRuntime,
  deadLetterSenderOnDemand,
  defaultPolicyFile,
  loadFunctionParts,
  memoizeRetryable,
  queueOfSource,
  queuesOf,
  resolveAuth,
  swrServicesFor,
};

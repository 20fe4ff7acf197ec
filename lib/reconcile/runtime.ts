/**
 * The composition root of the reconcile function, built like the queue handlers' runtime:
 * configuration read once at cold start (an invalid one fails the start, naming every problem);
 * the policy, the credentials and the clients are built by the first invocation and reused.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import { type AppConfig, readConfig } from '../config.ts';
import {
  createPowertoolsLog,
  createPowertoolsMetrics,
  functionDimensionOf,
  type Log,
  type MetricsSink,
} from '../observability.ts';
import { createPolicyLoader, withPolicy } from '../policy-source/index.ts';
import { defaultPolicyFile, loadFunctionParts, memoizeRetryable } from '../runtime.ts';
import type { ReconcileDeps, ReconcileOptions } from './reconcile.ts';

/** Everything but the deadline, which each invocation takes from its context. */
type ReconcileSettings = Omit<ReconcileOptions, 'deadline'>;

interface ReconcileRuntime {
  ready(): Promise<{ deps: ReconcileDeps; settings: ReconcileSettings; safetyMarginMs: number }>;
  log: Log;
  metrics: MetricsSink;
}

interface ReconcileRuntimeOptions {
  functionName: string;
  env?: Record<string, string | undefined>;
  log?: Log;
  metrics?: MetricsSink;
  /** AWS clients (tests, the local stack); by default built from the environment. */
  clients?: { dynamo?: DynamoDBClient; s3?: Pick<S3Client, 'send'> };
}

/**
 * @example
 * const runtime = createReconcileRuntime({ functionName: 'reconcile' }); // module scope
 * const { deps, settings, safetyMarginMs } = await runtime.ready();    // per invocation
 */
const createReconcileRuntime = (
  options: ReconcileRuntimeOptions,
): ReconcileRuntime & { config: AppConfig } => {
  const serviceName = 'swr-access-sync';
  const log = options.log ?? createPowertoolsLog(serviceName);
  const metrics =
    options.metrics ??
    createPowertoolsMetrics(serviceName, {
      functionName: functionDimensionOf(options.functionName, options.env ?? process.env),
    });
  const config = readConfig(options.env ?? process.env, { defaultPolicyFile, require: { tableName: true } });
  const policyLoader = createPolicyLoader(config, {
    log,
    metrics,
    ...(options.clients?.s3 === undefined ? {} : { s3: options.clients.s3 }),
  });

  const build = async () => {
    const { policy, auth, services, adapters } = await loadFunctionParts(
      config,
      policyLoader,
      metrics,
      log,
      options.clients?.dynamo,
    );
    const { store, auditStore, sweepProgress } = adapters;
    const deps: ReconcileDeps = {
      swr: services.swr,
      store,
      policy,
      log,
      metrics,
      audit: (records, options) => auditStore.write(records, options),
      sweepProgress,
      now: () => new Date(),
    };
    const settings: ReconcileSettings = {
      actor: options.functionName,
      dryRun: config.dryRun,
      allowMassRevoke: false,
      massRevoke: config.massRevoke,
      concurrency: config.swrConcurrency,
    };
    log.info('cold start', {
      functionName: options.functionName,
      policySource: policy.sourcePath,
      auth: auth.kind,
      dryRun: config.dryRun,
      massRevoke: config.massRevoke,
    });
    return { deps, settings, safetyMarginMs: config.safetyMarginMs };
  };

  const built = memoizeRetryable(build);
  return {
    config,
    log,
    metrics,
    // Every run uses the policy in use now (a new S3 version, once checked and valid).
    ready: async () => withPolicy(await built(), await policyLoader.load()),
  };
};

export type { ReconcileRuntime, ReconcileRuntimeOptions, ReconcileSettings };
export { createReconcileRuntime };

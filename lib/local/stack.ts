/**
 * The whole service on one machine: the SWR/IAM simulator, fauxqs (SQS), dynalite (DynamoDB)
 * and a poller per queue that drives the real handler wiring (`createSqsHandler` over
 * `createQueueRuntime`, exactly what `functions/*.ts` export), all on 127.0.0.1 with ports the OS
 * picks. Used by `npm start`, the end-to-end tests, the reliability harness and the benchmarks.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
} from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import queuesConfig from '../../config/queues.json' with { type: 'json' };
import { createMemoryTelemetry, type Log, type MetricsSink } from '../observability.ts';
import { createQueueRuntime, type QueueName } from '../runtime.ts';
import { type FaultConfig, type Simulator, type SimulatorSeed, startSimulator } from '../sim/index.ts';
import { createSqsHandler } from '../sqs-handler.ts';
import { ensureTable } from '../store/index.ts';
import { type LocalDynamo, startLocalDynamo } from './dynamo.ts';
import { functionEnvironment } from './function-environment.ts';
import { type InvocationReport, type Poller, startPoller } from './poller.ts';
import { sendEvents, waitForDrain } from './producer.ts';
import { simulatorEnv } from './sim-services.ts';
import { type LocalSqs, startLocalSqs } from './sqs.ts';

interface LocalStackOptions {
  seed?: SimulatorSeed;
  policyFile?: string;
  faults?: Partial<FaultConfig>;
  /** Added to every simulator request. */
  latencyMs?: number;
  /** Extra environment for the functions (retry limits, DRY_RUN, credentials kind…). */
  env?: Record<string, string>;
  /** Local deviation from Lambda: failed messages come back after this many seconds (default 1). */
  retryVisibilitySeconds?: number;
  /** Function timeout for the pollers (default: config/queues.json). */
  functionTimeoutMs?: number;
  /** Chaos: kill invocations (nothing deleted, whatever the handler did). */
  crash?: (event: SQSEvent) => boolean;
  onInvocation?: (queue: QueueName, report: InvocationReport) => void;
  log?: Log;
  metrics?: MetricsSink;
  /** Start the pollers at once (default true); false lets a test enqueue first. */
  startPollers?: boolean;
}

interface DeadLetterView {
  queue: QueueName;
  messageId: string;
  body: string;
  attributes: Record<string, string>;
}

interface LocalStack {
  sim: Simulator;
  sqs: LocalSqs;
  dynamo: LocalDynamo;
  tableName: string;
  /** The environment the functions were configured with (secrets included: never print it). */
  env: Record<string, string>;
  startPollers(): void;
  /** Sends events (or raw bodies) as a producer would. */
  send(events: readonly unknown[]): Promise<void>;
  /** Waits until every queue (the sweep queue included) is empty and nothing is in flight. */
  drain(options?: { timeoutMs?: number; onProgress?: (remaining: number) => void }): Promise<void>;
  /** Reads (and, with `remove`, deletes) every message in every DLQ. */
  deadLetters(options?: { remove?: boolean }): Promise<DeadLetterView[]>;
  stop(): Promise<void>;
}

const tableName = 'swr-access-sync-local';

/**
 * @example
 * const stack = await startLocalStack({ policyFile: 'config/demo-policy.yaml' });
 * await stack.send(events); await stack.drain(); console.log(stack.sim.permissions());
 * await stack.stop();
 */
const startLocalStack = async (options: LocalStackOptions = {}): Promise<LocalStack> => {
  const started: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
  };
  try {
    const sim = await startSimulator({
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.faults === undefined ? {} : { faults: options.faults }),
      ...(options.latencyMs === undefined ? {} : { latencyMs: options.latencyMs }),
    });
    started.push(() => sim.close());
    const sqs = await startLocalSqs();
    started.push(() => sqs.stop());
    const dynamo = await startLocalDynamo();
    started.push(() => dynamo.stop());
    await ensureTable(dynamo.client, tableName);

    const env: Record<string, string> = {
      ...simulatorEnv(sim),
      TABLE_NAME: tableName,
      ACCESS_CHANGES_DLQ_URL: sqs.queues.accessChanges.dlqUrl,
      OFFBOARDING_DLQ_URL: sqs.queues.offboarding.dlqUrl,
      OFFBOARDING_SWEEPS_DLQ_URL: sqs.queues.offboardingSweeps.dlqUrl,
      // The queue handlers request each leaver's sweep there, as deployed (serverless.yml).
      OFFBOARDING_SWEEPS_QUEUE_URL: sqs.queues.offboardingSweeps.url,
      POLICY_FILE: options.policyFile ?? 'config/demo-policy.yaml',
      RETRY_BASE_DELAY_MS: '50',
      RETRY_MAX_DELAY_MS: '1000',
      SAFETY_MARGIN_MS: '2000',
      ...options.env,
    };
    const telemetry = createMemoryTelemetry();
    const log = options.log ?? telemetry.log;
    const metrics = options.metrics ?? telemetry.metrics;
    // One runtime per simulated function instance: as in Lambda, each concurrent batch runs in
    // an instance of its own, with its own SWR/IAM connection pools and rate limit.
    const instancesOf = (queue: QueueName, functionName: string) =>
      Array.from({ length: sqs.queues[queue].maximumConcurrency }, () =>
        createSqsHandler(
          createQueueRuntime({
            functionName,
            queue,
            // As deployed: the function's own settings, then the caller's overrides.
            env: { ...env, ...functionEnvironment(functionName), ...options.env },
            log,
            metrics,
            clients: { sqs: sqs.client, dynamo: dynamo.client },
          }),
        ),
      );
    // Every queue of config/queues.json, each feeding the function the file names.
    const queueNames = Object.keys(sqs.queues) as QueueName[];
    const handlers = Object.fromEntries(
      queueNames.map((queue) => [queue, instancesOf(queue, sqs.queues[queue].functionName)]),
    ) as Record<QueueName, ReturnType<typeof instancesOf>>;

    const pollers: Poller[] = [];
    const startPollers = () => {
      if (pollers.length > 0) return;
      for (const queue of queueNames) {
        const refs = sqs.queues[queue];
        pollers.push(
          startPoller({
            sqs: sqs.client,
            queue: refs,
            functionName: refs.functionName,
            handler: handlers[queue],
            batchSize: refs.batchSize,
            fifo: refs.fifo,
            maximumBatchingWindowSeconds: refs.maximumBatchingWindowSeconds,
            maximumConcurrency: refs.maximumConcurrency,
            functionTimeoutMs: options.functionTimeoutMs ?? queuesConfig.functionTimeoutSeconds * 1000,
            retryVisibilitySeconds: options.retryVisibilitySeconds ?? 1,
            ...(options.crash === undefined ? {} : { crash: options.crash }),
            onInvocation: (report) => options.onInvocation?.(queue, report),
            logger: {
              warn: (message: string) => log.warn(message),
              error: (message: string) => log.error(message),
            },
          }),
        );
      }
    };
    started.push(async () => {
      await Promise.all(pollers.map((poller) => poller.stop()));
    });
    if (options.startPollers !== false) startPollers();

    // The sweep queue last: the offboarding handler feeds it (see waitForDrain).
    const sourceUrls = queueNames.map((queue) => sqs.queues[queue].url);
    return {
      sim,
      sqs,
      dynamo,
      tableName,
      env,
      startPollers,
      async send(events) {
        await sendEvents(sqs.client, sqs.queues, events);
      },
      async drain(drainOptions = {}) {
        await waitForDrain(sqs.client, sourceUrls, {
          timeoutMs: drainOptions.timeoutMs ?? 120_000,
          onProgress: (depths) =>
            drainOptions.onProgress?.(
              depths.reduce((sum, depth) => sum + depth.visible + depth.notVisible + depth.delayed, 0),
            ),
        });
      },
      async deadLetters(readOptions = {}) {
        const letters: DeadLetterView[] = [];
        const held: Array<{
          url: string;
          entries: Array<{ Id: string; ReceiptHandle: string | undefined }>;
        }> = [];
        for (const queue of queueNames) {
          // Bounded: a DLQ holds what this run put there; stop at the first empty receive.
          for (let round = 0; round < 1000; round += 1) {
            const answer = await sqs.client.send(
              new ReceiveMessageCommand({
                QueueUrl: sqs.queues[queue].dlqUrl,
                MaxNumberOfMessages: 10,
                MessageAttributeNames: ['All'],
                VisibilityTimeout: 30,
                WaitTimeSeconds: 0,
              }),
            );
            const messages = answer.Messages ?? [];
            if (messages.length === 0) break;
            for (const message of messages)
              letters.push({
                queue,
                messageId: message.MessageId ?? '',
                body: message.Body ?? '',
                attributes: Object.fromEntries(
                  Object.entries(message.MessageAttributes ?? {}).map(([key, value]) => [
                    key,
                    value.StringValue ?? '',
                  ]),
                ),
              });
            const entries = messages.map((message, index) => ({
              Id: String(index),
              ReceiptHandle: message.ReceiptHandle,
            }));
            const url = sqs.queues[queue].dlqUrl;
            // Without `remove`, kept in flight until every DLQ is read, then released. A FIFO group
            // stays locked while its message is in flight, so one message per group is seen.
            if (readOptions.remove)
              await sqs.client.send(new DeleteMessageBatchCommand({ QueueUrl: url, Entries: entries }));
            else held.push({ url, entries });
          }
        }
        // Reading without removing: make what was read visible again for the next reader.
        if (!readOptions.remove)
          for (const { url, entries } of held)
            await sqs.client.send(
              new ChangeMessageVisibilityBatchCommand({
                QueueUrl: url,
                Entries: entries.map((entry) => ({ ...entry, VisibilityTimeout: 0 })),
              }),
            );
        return letters;
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
};

export type { DeadLetterView, LocalStack, LocalStackOptions };
export { startLocalStack };

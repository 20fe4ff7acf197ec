/**
 * The queue functions (every queue of `config/queues.json`: the offboard function reads the
 * offboarding and the sweep queues) on a local stack started with `startPollers: false`, as
 * `lib/local/stack.ts` runs them (one runtime per simulated instance, the real handler wiring,
 * pollers that gather batches as Lambda does), with what a benchmark may vary per function: the
 * event source (batch size, batching window, instances), the environment (e.g. `SWR_MAX_RPS`),
 * and the instances themselves (child processes instead of in-process runtimes).
 */
import queuesConfig from '../config/queues.json' with { type: 'json' };
import { functionEnvironment } from '../lib/local/function-environment.ts';
import {
  type InvocationReport,
  type Poller,
  type SqsBatchHandler,
  startPoller,
} from '../lib/local/poller.ts';
import type { LocalStack } from '../lib/local/stack.ts';
import { createMemoryTelemetry, type Log, silentLog } from '../lib/observability.ts';
import { createQueueRuntime, type QueueName } from '../lib/runtime.ts';
import { createSqsHandler } from '../lib/sqs-handler.ts';

/** What Lambda's event source mapping is told (config/queues.json by default). */
interface EventSource {
  batchSize: number;
  maximumBatchingWindowSeconds: number;
  maximumConcurrency: number;
}

interface FunctionSetup {
  source?: Partial<EventSource>;
  /** Added to the stack's environment for this function's instances. */
  env?: Record<string, string>;
  /** One handler per instance (e.g. child processes); default: in-process runtimes. */
  handlers?: readonly SqsBatchHandler[];
  /** Where the in-process instances log (audit records included); default: nowhere. */
  log?: Log;
}

interface RunningFunctions {
  /** Metric counters of the in-process instances, per function (RateLimitWaits, ApiCalls…). */
  counters(queue: QueueName): Record<string, number>;
  /** What the pollers warned about (timed-out or throwing handlers), in order. */
  warnings(): string[];
  /** The size of every batch handed to an instance, per function, in order. */
  batches(queue: QueueName): number[];
  stop(): Promise<void>;
}

/** The event source a function gets: the configured one with the setup's overrides. */
const eventSourceOf = (queue: QueueName, setup: FunctionSetup = {}): EventSource => {
  const configured = queuesConfig.queues[queue];
  return {
    batchSize: setup.source?.batchSize ?? configured.batchSize,
    maximumBatchingWindowSeconds:
      setup.source?.maximumBatchingWindowSeconds ?? configured.maximumBatchingWindowSeconds,
    maximumConcurrency: setup.source?.maximumConcurrency ?? configured.maximumConcurrency,
  };
};

/**
 * @example
 * const stack = await startLocalStack({ ..., startPollers: false });
 * const functions = startFunctions(stack, { accessChanges: { env: { SWR_MAX_RPS: '10' } } });
 * await stack.send(events); await stack.drain(); await functions.stop();
 */
const startFunctions = (
  stack: LocalStack,
  setups: Partial<Record<QueueName, FunctionSetup>> = {},
  options: { onInvocation?: (queue: QueueName, report: InvocationReport) => void } = {},
): RunningFunctions => {
  const pollers: Poller[] = [];
  const warnings: string[] = [];
  const queues = Object.keys(queuesConfig.queues) as QueueName[];
  const batches = Object.fromEntries(queues.map((queue) => [queue, [] as number[]])) as Record<
    QueueName,
    number[]
  >;
  const telemetry = Object.fromEntries(queues.map((queue) => [queue, createMemoryTelemetry()])) as Record<
    QueueName,
    ReturnType<typeof createMemoryTelemetry>
  >;
  for (const queue of queues) {
    // A queue without an environment of its own (the sweep queue) runs with that of its
    // function's other queue: one function, one configuration.
    const sibling = queues.find(
      (other) =>
        other !== queue &&
        queuesConfig.queues[other].function === queuesConfig.queues[queue].function &&
        setups[other]?.env !== undefined,
    );
    const own = setups[queue] ?? {};
    const setup: FunctionSetup =
      own.env === undefined && sibling !== undefined ? { ...own, env: setups[sibling]?.env } : own;
    const refs = stack.sqs.queues[queue];
    const source = eventSourceOf(queue, setup);
    const handlers =
      setup.handlers ??
      Array.from({ length: source.maximumConcurrency }, () =>
        createSqsHandler(
          createQueueRuntime({
            functionName: refs.functionName,
            queue,
            env: { ...stack.env, ...functionEnvironment(refs.functionName), ...setup.env },
            log: setup.log ?? silentLog,
            metrics: telemetry[queue].metrics,
            clients: { sqs: stack.sqs.client, dynamo: stack.dynamo.client },
          }),
        ),
      );
    pollers.push(
      startPoller({
        sqs: stack.sqs.client,
        queue: refs,
        functionName: refs.functionName,
        handler: handlers,
        fifo: refs.fifo,
        ...source,
        functionTimeoutMs: queuesConfig.functionTimeoutSeconds * 1000,
        retryVisibilitySeconds: 1,
        onInvocation: (report: InvocationReport) => {
          batches[queue].push(report.records);
          options.onInvocation?.(queue, report);
        },
        logger: {
          warn: (message) => warnings.push(`${refs.functionName}: ${message}`),
          error: (message) => warnings.push(`${refs.functionName}: ${message}`),
        },
      }),
    );
  }
  return {
    counters: (queue) => Object.fromEntries(telemetry[queue].counters),
    warnings: () => [...warnings],
    batches: (queue) => [...batches[queue]],
    stop: async () => {
      await Promise.all(pollers.map((poller) => poller.stop()));
    },
  };
};

export type { EventSource, FunctionSetup, RunningFunctions };
export { eventSourceOf, startFunctions };

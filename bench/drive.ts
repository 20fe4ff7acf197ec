/**
 * Drives events straight through our pipeline (`processRecords`), the way Lambda's SQS event
 * source mapping would on a FIFO queue but without the queue: consecutive batches of 10 in send
 * order, a failed message delivered again at once (before any later batch, so each user's order
 * holds) until it succeeds or reaches the receive limit. Also builds the SWR/IAM client against
 * a simulator.
 */

import type { MembershipStorePort, Policy } from '../lib/domain.ts';
import { simulatorServices } from '../lib/local/sim-services.ts';
import { createMemoryTelemetry, MetricNames, silentLog } from '../lib/observability.ts';
import type { PipelineDeps, PipelineRecord } from '../lib/pipeline.ts';
import { processRecords } from '../lib/pipeline.ts';
import type { Simulator } from '../lib/sim/index.ts';
import type { SwrServices } from '../lib/swr/index.ts';
import { defaultRetryPolicy } from '../lib/swr/retry.ts';
import type { BenchEvent } from './workload.ts';

interface DriveOptions {
  batchSize: number;
  concurrency: number;
  /** Receives per message before it would go to the DLQ (SQS maxReceiveCount). */
  maxReceives: number;
  /** The membership store; share one between a warm-up and the measured run. */
  store: MembershipStorePort;
  /** Called after each batch (all its redeliveries included). */
  afterBatch?: (index: number) => void | Promise<void>;
}

interface DriveReport {
  ms: number;
  messages: number;
  applied: number;
  /** Deliveries beyond the first. */
  redeliveries: number;
  /** Messages that reached the receive limit or failed permanently. */
  lost: number;
  /** SWR/IAM request attempts and retries the client reported. */
  apiCalls: number;
  apiRetries: number;
}

/**
 * The client the functions build, pointed at the simulator: password auth as the service account,
 * the production retry policy (4 attempts, 200 ms base, 5 s cap).
 *
 * @example const services = servicesFor(sim, { onRetry: () => retries++ });
 */
const servicesFor = (
  sim: Simulator,
  hooks: { onRequest?: () => void; onRetry?: () => void } = {},
): SwrServices => simulatorServices(sim, { retry: defaultRetryPolicy, hooks });

const recordsOf = (events: readonly BenchEvent[]): PipelineRecord[] =>
  events.map((event, index) => ({
    messageId: `msg-${index}`,
    body: JSON.stringify(event),
    groupId: event.user.id,
    receiveCount: 1,
  }));

/**
 * @example const report = await drivePipeline(events, sim, policy, { batchSize: 10, concurrency: 8, maxReceives: 5 });
 */
const drivePipeline = async (
  events: readonly BenchEvent[],
  sim: Simulator,
  policy: Policy,
  options: DriveOptions,
): Promise<DriveReport> => {
  const telemetry = createMemoryTelemetry();
  const services = servicesFor(sim, {
    onRequest: () => telemetry.metrics.count(MetricNames.apiCalls),
    onRetry: () => telemetry.metrics.count(MetricNames.apiRetries),
  });
  const deps: PipelineDeps = {
    swr: services.swr,
    directory: services.users,
    store: options.store,
    policy,
    deadLetters: undefined,
    log: silentLog,
    metrics: telemetry.metrics,
    now: () => new Date(),
  };
  const settings = { actor: 'bench', concurrency: options.concurrency, dryRun: false };
  const records = recordsOf(events);
  const report: DriveReport = {
    ms: 0,
    messages: records.length,
    applied: 0,
    redeliveries: 0,
    lost: 0,
    apiCalls: 0,
    apiRetries: 0,
  };
  const startedAt = performance.now();
  try {
    for (let start = 0, index = 0; start < records.length; start += options.batchSize, index += 1) {
      let batch = records.slice(start, start + options.batchSize);
      // Bounded: every round either finishes a message or raises its receive count.
      while (batch.length > 0) {
        const result = await processRecords(batch, deps, settings, Date.now() + 60_000);
        report.applied += result.applied.length;
        report.lost += result.undeliverable.length;
        const failed = new Set(result.response.batchItemFailures.map((item) => item.itemIdentifier));
        const permanent = new Set(result.undeliverable.map((failure) => failure.messageId));
        const again = batch
          .filter((record) => failed.has(record.messageId) && !permanent.has(record.messageId))
          .map((record) => ({ ...record, receiveCount: record.receiveCount + 1 }));
        report.lost += again.filter((record) => record.receiveCount > options.maxReceives).length;
        batch = again.filter((record) => record.receiveCount <= options.maxReceives);
        report.redeliveries += batch.length;
      }
      await options.afterBatch?.(index);
    }
  } finally {
    report.ms = performance.now() - startedAt;
    await services.close();
  }
  report.apiCalls = telemetry.counters.get(MetricNames.apiCalls) ?? 0;
  report.apiRetries = telemetry.counters.get(MetricNames.apiRetries) ?? 0;
  return report;
};

/**
 * The naive baseline over the same events, one after another (it never batches).
 */
const driveNaive = async (
  events: readonly BenchEvent[],
  apply: (event: BenchEvent) => Promise<void>,
): Promise<{ ms: number; failed: number }> => {
  const startedAt = performance.now();
  let failed = 0;
  for (const event of events) await apply(event).catch(() => (failed += 1));
  return { ms: performance.now() - startedAt, failed };
};

export type { DriveOptions, DriveReport };
export { driveNaive, drivePipeline, recordsOf, servicesFor };

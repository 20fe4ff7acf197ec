/**
 * Drives events straight through our pipeline (`processRecords`) in the shape the deployed
 * configuration gives them, without the queues: `config/queues.json` says, per queue, how large a
 * batch may be and how many function instances run at once, and the producer's rule says which
 * queue an event goes to (offboardings to the FIFO offboarding queue, the rest to access-changes).
 * Every event is in its queue before the first batch (a reorganisation that landed at once), so a
 * batching window would not change a batch: each fills to its batch size at once. Each instance
 * has its own SWR/IAM client (connection pools, rate limit), configured by the functions' own
 * configuration reader; the membership store and the sweep progress are shared, as DynamoDB is.
 * A failed message goes back to its queue (FIFO: to the front, before the rest of its group;
 * standard: to the back) until it succeeds or reaches the queue's receive limit.
 *
 * The sweep queue (`offboardingSweeps`) is consumed too, in its configured shape: the pipeline's
 * sweep requests (`deps.sweepRequests`, as the deployed functions have it) land there while the
 * other queues run, and a sweep instance takes a batch when it is full, when the batching window
 * (counted from the oldest waiting request) ends, or at once when nothing more can arrive (every
 * feeding queue is done: waiting out the window then would only add idle time, as for the other
 * queues, whose every message is waiting before the first batch).
 */

import queuesConfig from '../config/queues.json' with { type: 'json' };
import { type AppConfig, readConfig } from '../lib/config.ts';
import type { MembershipStorePort, Policy } from '../lib/domain.ts';
import { functionEnvironment } from '../lib/local/function-environment.ts';
import { simulatorEnv } from '../lib/local/sim-services.ts';
import { createMemoryTelemetry, MetricNames, silentLog } from '../lib/observability.ts';
import { createMemorySweepProgress, type SweepProgressPort } from '../lib/offboarding/progress.ts';
import { type SweepRequestPort, sweepRequestBody } from '../lib/offboarding/requests.ts';
import type { PipelineDeps, PipelineRecord, PipelineSettings } from '../lib/pipeline.ts';
import { processRecords, processSweepRequests } from '../lib/pipeline.ts';
import { queueOfEvent } from '../lib/producer.ts';
import type { QueueName } from '../lib/runtime.ts';
import type { Simulator } from '../lib/sim/index.ts';
import { createMemoryLease } from '../lib/store/lease.ts';
import { createSwrServices, type SwrServices } from '../lib/swr/index.ts';
import { createCallLedger, type LedgerCounts } from './ledger.ts';
import type { BenchEvent } from './workload.ts';

/** How one queue is consumed: the event source mapping's numbers. */
interface QueueShape {
  fifo: boolean;
  batchSize: number;
  /** maximumConcurrency: function instances at once. */
  instances: number;
  maxReceiveCount: number;
  /** maximumBatchingWindowSeconds, in ms: matters only while messages can still arrive. */
  windowMs: number;
}

/** The shapes `config/queues.json` declares (what serverless.yml deploys). */
const deployedShapes = (): Record<QueueName, QueueShape> => {
  const shape = (name: QueueName): QueueShape => {
    const queue = queuesConfig.queues[name];
    return {
      fifo: queue.fifo,
      batchSize: queue.batchSize,
      instances: queue.maximumConcurrency,
      maxReceiveCount: queue.maxReceiveCount,
      windowMs: queue.maximumBatchingWindowSeconds * 1000,
    };
  };
  return {
    accessChanges: shape('accessChanges'),
    offboarding: shape('offboarding'),
    offboardingSweeps: shape('offboardingSweeps'),
  };
};

/**
 * The messages of one queue waiting for a batch. Pure. FIFO: a batch takes messages in order and
 * none of a group another batch holds; standard: the next messages whatever their group.
 *
 * @example const queue = new DeliveryQueue(records, true); const batch = queue.take(10); queue.settle(batch, []);
 */
class DeliveryQueue {
  readonly #fifo: boolean;
  #waiting: PipelineRecord[];
  readonly #heldGroups = new Map<string, number>();
  /** When the oldest waiting message arrived (epoch ms), for a batching window. */
  #oldestAt: number | undefined;

  constructor(records: readonly PipelineRecord[], fifo: boolean) {
    this.#fifo = fifo;
    this.#waiting = [...records];
    if (records.length > 0) this.#oldestAt = Date.now();
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  /** How long the oldest waiting message has waited (0 when none). */
  waitedMs(now = Date.now()): number {
    return this.#oldestAt === undefined || this.#waiting.length === 0 ? 0 : now - this.#oldestAt;
  }

  /** Messages arriving while the queue is consumed (sweep requests). */
  push(records: readonly PipelineRecord[]): void {
    if (this.#waiting.length === 0) this.#oldestAt = Date.now();
    this.#waiting.push(...records);
  }

  /** Up to `max` messages for one batch (none when every waiting group is held). */
  take(max: number): PipelineRecord[] {
    if (!this.#fifo) {
      return this.#waiting.splice(0, max);
    }
    const batch: PipelineRecord[] = [];
    const rest: PipelineRecord[] = [];
    const skipped = new Set<string>();
    for (const record of this.#waiting) {
      const group = record.groupId ?? '';
      const free = !skipped.has(group) && !this.#heldGroups.has(group);
      if (batch.length < max && free) batch.push(record);
      else {
        // A group's later messages never pass an earlier one left behind.
        skipped.add(group);
        rest.push(record);
      }
    }
    for (const record of batch) {
      const group = record.groupId ?? '';
      this.#heldGroups.set(group, (this.#heldGroups.get(group) ?? 0) + 1);
    }
    this.#waiting = rest;
    return batch;
  }

  /** The batch is answered: its groups are free again, `again` is delivered once more. */
  settle(batch: readonly PipelineRecord[], again: readonly PipelineRecord[]): void {
    if (this.#fifo) {
      for (const record of batch) {
        const group = record.groupId ?? '';
        const held = (this.#heldGroups.get(group) ?? 1) - 1;
        if (held <= 0) this.#heldGroups.delete(group);
        else this.#heldGroups.set(group, held);
      }
      this.#waiting = [...again, ...this.#waiting];
    } else this.#waiting.push(...again);
  }
}

interface DriveOptions {
  /** The membership store; share one between a warm-up and the measured run. */
  store: MembershipStorePort;
  /** Where offboarding sweeps keep their cursor (shared by every instance, as the table is). */
  sweepProgress?: SweepProgressPort;
  /** Default: `deployedShapes()`. */
  shapes?: Record<QueueName, QueueShape>;
  /**
   * Environment of the functions on top of the simulator's login (e.g. `SWR_MAX_RPS`), per queue;
   * a queue without an entry takes the entry of another queue of its function.
   */
  env?: Partial<Record<QueueName, Record<string, string>>>;
  /** Called with each batch's size when it is handed to an instance. */
  onBatch?: (queue: QueueName, size: number) => void;
}

interface DriveReport {
  ms: number;
  /** Messages of the source queues (sweep requests are counted in `applied`, not here). */
  messages: number;
  applied: number;
  /** Deliveries beyond the first. */
  redeliveries: number;
  /** Messages that reached the receive limit or failed permanently. */
  lost: number;
  /** Batches handed to an instance, per queue. */
  batches: Record<QueueName, number[]>;
  /** SWR/IAM request attempts and retries the clients reported, and waits for their rate limit. */
  apiCalls: number;
  apiRetries: number;
  rateLimitWaits: number;
  /** Our SWR calls by stage and kind (see ledger.ts). */
  ledger: LedgerCounts;
}

const recordsOf = (events: readonly BenchEvent[]): PipelineRecord[] =>
  events.map((event, index) => ({
    messageId: `msg-${index}`,
    body: JSON.stringify(event),
    groupId: event.user.id,
    receiveCount: 1,
  }));

/** The functions' configuration for an instance (defaults as deployed), logged in to the simulator. */
const configFor = (sim: Simulator, env: Record<string, string> = {}): AppConfig =>
  readConfig({ ...simulatorEnv(sim), POLICY_FILE: 'unused: the bench hands in the policy', ...env });

/** The SWR client and IAM directory one instance builds from its configuration (as lib/runtime.ts does). */
const servicesOf = (
  config: AppConfig,
  metrics: ReturnType<typeof createMemoryTelemetry>['metrics'],
): SwrServices => {
  const auth = config.credentials;
  // The simulator's login is a password (simulatorEnv): never a secret to fetch.
  if (auth.kind === 'secret') throw new Error('the bench logs in to the simulator with a password');
  return createSwrServices(
    {
      swrEndpoint: config.swrEndpoint,
      iamEndpoint: config.iamEndpoint,
      auth,
      retry: config.retry,
      timeouts: { requestTimeoutMs: config.requestTimeoutMs },
      rateLimit: config.swrRateLimit,
    },
    {
      onRequest: () => metrics.count(MetricNames.apiCalls),
      onRetry: () => metrics.count(MetricNames.apiRetries),
      onRateLimitWait: () => metrics.count(MetricNames.rateLimitWaits),
    },
  );
};

/**
 * @example const report = await drivePipeline(events, sim, policy, { store: createMemoryStore() });
 */
const drivePipeline = async (
  events: readonly BenchEvent[],
  sim: Simulator,
  policy: Policy,
  options: DriveOptions,
): Promise<DriveReport> => {
  const shapes = options.shapes ?? deployedShapes();
  const telemetry = createMemoryTelemetry();
  const ledger = createCallLedger();
  const sweepProgress = options.sweepProgress ?? createMemorySweepProgress();
  // One lease for every access-changes instance, as the deployed ones share the table's item.
  const convergeLease = createMemoryLease();
  const records = recordsOf(events);
  const report: DriveReport = {
    ms: 0,
    messages: records.length,
    applied: 0,
    redeliveries: 0,
    lost: 0,
    batches: { accessChanges: [], offboarding: [], offboardingSweeps: [] },
    apiCalls: 0,
    apiRetries: 0,
    rateLimitWaits: 0,
    ledger: ledger.counts(),
  };
  const closers: Array<() => Promise<void>> = [];

  // Every queue's messages, the sweep queue's arriving while the others run.
  const queues = {
    accessChanges: new DeliveryQueue(
      records.filter((_, index) => queueOfEvent(events[index] as BenchEvent) === 'accessChanges'),
      shapes.accessChanges.fifo,
    ),
    offboarding: new DeliveryQueue(
      records.filter((_, index) => queueOfEvent(events[index] as BenchEvent) === 'offboarding'),
      shapes.offboarding.fifo,
    ),
    offboardingSweeps: new DeliveryQueue([], shapes.offboardingSweeps.fifo),
  } satisfies Record<QueueName, DeliveryQueue>;
  /** Queues that may still send sweep requests; the sweep queue waits for them. */
  const feeding = new Set<QueueName>(['accessChanges', 'offboarding']);
  let sweepRequestsSent = 0;
  const sweepRequests: SweepRequestPort = {
    async send(requests) {
      const first = sweepRequestsSent;
      sweepRequestsSent += requests.length;
      queues.offboardingSweeps.push(
        requests.map((request, index) => ({
          messageId: `sweep-${first + index}`,
          body: sweepRequestBody(request),
          groupId: undefined,
          receiveCount: 1,
        })),
      );
      wakeAll();
      return { failed: [] };
    },
  };
  let waiters: Array<() => void> = [];
  const wakeAll = () => {
    for (const wake of waiters) wake();
    waiters = [];
  };
  /** Until something changes, or at most `ms` (a batching window that may end). */
  const nextChange = (ms?: number) =>
    new Promise<void>((resolve) => {
      waiters.push(resolve);
      if (ms !== undefined) setTimeout(resolve, ms);
    });

  /**
   * A queue's environment is its function's: a queue without one of its own (the sweep queue)
   * takes that of the other queue of the same function (offboarding's, for `offboard`).
   */
  const envOf = (name: QueueName): Record<string, string> | undefined =>
    options.env?.[name] ??
    (Object.keys(queuesConfig.queues) as QueueName[])
      .filter((other) => queuesConfig.queues[other].function === queuesConfig.queues[name].function)
      .map((other) => options.env?.[other])
      .find((env) => env !== undefined);

  const runQueue = async (name: QueueName): Promise<void> => {
    const shape = shapes[name];
    const queue = queues[name];
    const upstreamDone = () => name !== 'offboardingSweeps' || feeding.size === 0;
    let inFlight = 0;
    const instance = async (): Promise<void> => {
      const config = configFor(sim, {
        ...functionEnvironment(queuesConfig.queues[name].function),
        ...envOf(name),
      });
      const services = servicesOf(config, telemetry.metrics);
      closers.push(() => services.close());
      const tap = ledger.tap(services.swr, sweepProgress);
      const deps: PipelineDeps = {
        swr: tap.swr,
        directory: services.users,
        store: options.store,
        policy,
        deadLetters: undefined,
        log: silentLog,
        metrics: telemetry.metrics,
        sweepProgress: tap.sweepProgress,
        // As deployed: the queue functions request sweeps on the sweep queue.
        sweepRequests,
        ...(name === 'accessChanges' ? { convergeLease } : {}),
        now: () => new Date(),
      };
      const settings: PipelineSettings = {
        actor: name === 'accessChanges' ? 'sync' : 'offboard',
        concurrency: config.swrConcurrency,
        sweepConcurrency: config.sweepConcurrency,
        dryRun: false,
        maxReceiveCount: shape.maxReceiveCount,
      };
      const process = name === 'offboardingSweeps' ? processSweepRequests : processRecords;
      for (;;) {
        // A batch is ready when full, when its window ended, or when nothing more can arrive.
        const waited = queue.waitedMs();
        const ready =
          queue.waiting >= shape.batchSize ||
          (queue.waiting > 0 && (waited >= shape.windowMs || upstreamDone()));
        const batch = ready ? queue.take(shape.batchSize) : [];
        if (batch.length === 0) {
          if (queue.waiting === 0 && inFlight === 0 && upstreamDone()) return;
          // Another instance may still hand messages back, or a request arrive: wait for it (and,
          // when only the window holds a batch back, at most until the window ends).
          await nextChange(ready || queue.waiting === 0 ? undefined : Math.max(1, shape.windowMs - waited));
          continue;
        }
        inFlight += 1;
        options.onBatch?.(name, batch.length);
        report.batches[name].push(batch.length);
        tap.beginBatch();
        const deadline = Date.now() + queuesConfig.functionTimeoutSeconds * 1000 - config.safetyMarginMs;
        const result = await process(batch, deps, settings, deadline);
        report.applied += result.applied.length;
        report.lost += result.undeliverable.length + result.deadLettered.length;
        const failed = new Set(result.response.batchItemFailures.map((item) => item.itemIdentifier));
        const settled = new Set([...result.undeliverable, ...result.deadLettered].map((f) => f.messageId));
        const again = batch
          .filter((record) => failed.has(record.messageId) && !settled.has(record.messageId))
          .map((record) => ({ ...record, receiveCount: record.receiveCount + 1 }));
        const kept = again.filter((record) => record.receiveCount <= shape.maxReceiveCount);
        report.lost += again.length - kept.length;
        report.redeliveries += kept.length;
        queue.settle(batch, kept);
        inFlight -= 1;
        wakeAll();
      }
    };
    await Promise.all(Array.from({ length: shape.instances }, instance));
    feeding.delete(name);
    wakeAll();
  };

  const startedAt = performance.now();
  try {
    await Promise.all([runQueue('accessChanges'), runQueue('offboarding'), runQueue('offboardingSweeps')]);
  } finally {
    report.ms = performance.now() - startedAt;
    await Promise.all(closers.map((close) => close()));
  }
  report.apiCalls = telemetry.counters.get(MetricNames.apiCalls) ?? 0;
  report.apiRetries = telemetry.counters.get(MetricNames.apiRetries) ?? 0;
  report.rateLimitWaits = telemetry.counters.get(MetricNames.rateLimitWaits) ?? 0;
  report.ledger = ledger.counts();
  return report;
};

/**
 * An SWR client configured as the functions configure theirs (for the naive baseline).
 *
 * @example const services = servicesFor(sim, { SWR_MAX_RPS: '20' });
 */
const servicesFor = (sim: Simulator, env: Record<string, string> = {}): SwrServices =>
  servicesOf(configFor(sim, env), createMemoryTelemetry().metrics);

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

export type { DriveOptions, DriveReport, QueueShape };
export { configFor, DeliveryQueue, deployedShapes, driveNaive, drivePipeline, recordsOf, servicesFor };

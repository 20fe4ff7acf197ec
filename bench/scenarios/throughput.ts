/**
 * 3. Throughput: events per second through the local stack (fauxqs + pollers that gather batches
 * as Lambda does + the handlers + the simulator with `--latency-ms` on every request), with the
 * deployed configuration: each queue's batch size, batching window and instances from
 * config/queues.json, one runtime per instance with the default per-instance rate limit.
 * The naive handler runs behind the same pollers and queues, one client per instance configured
 * the same way. Its rate does not depend on how its batches are gathered (it never coalesces), and
 * at ~25 calls per event it would take many minutes: it is timed on the first
 * `--throughput-naive-events` events. Each run starts with an empty queue and ends when both
 * queues are drained, producer included.
 */
import queuesConfig from '../../config/queues.json' with { type: 'json' };
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import { type Poller, startPoller } from '../../lib/local/poller.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { silentLog } from '../../lib/observability.ts';
import { parseSeed } from '../../lib/sim/index.ts';
import type { SwrServices } from '../../lib/swr/index.ts';
import type { BenchOptions } from '../args.ts';
import { classifyCounts, countsSince } from '../counts.ts';
import { servicesFor } from '../drive.ts';
import { eventSourceOf, startFunctions } from '../functions.ts';
import { createNaiveSqsHandler, createNaiveSync } from '../naive.ts';
import { expectedPermissions, permissionDifferences, reorganisation, warmupEvents } from '../workload.ts';
import { prepareWorld, progress, type ScenarioResult } from './common.ts';

const drainTimeoutMs = 15 * 60 * 1000;

/** Sends `events` and waits for both queues to drain; the time covers both (producer included). */
const timeThrough = async (stack: LocalStack, events: readonly unknown[]) => {
  const before = stack.sim.requestCounts();
  const startedAt = performance.now();
  await stack.send(events);
  await stack.drain({ timeoutMs: drainTimeoutMs });
  const ms = performance.now() - startedAt;
  return { ms, counts: classifyCounts(countsSince(before, stack.sim.requestCounts())) };
};

/**
 * @example const { rows } = await runThroughputScenario(options);
 */
const runThroughputScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const prepared = prepareWorld(options);
  const { world, policyFile } = prepared;
  const base = Date.now() - 6 * 60 * 60 * 1000;
  const reorg = reorganisation(world, {
    count: options.sizes.throughputEvents,
    seed: options.seed + 2,
    startMs: base + 60_000,
    stepMs: 1000,
  });
  const expected = expectedPermissions(world, reorg.finalTeams);
  const stackOptions = {
    seed: parseSeed(world.seed),
    policyFile,
    latencyMs: options.sizes.latencyMs,
    log: silentLog,
    env: { SWR_MAX_CONCURRENCY: String(options.sizes.concurrency) },
    startPollers: false,
  };
  try {
    progress(`throughput: ours, ${reorg.events.length} events, ${options.sizes.latencyMs} ms latency`);
    const ours = await startLocalStack(stackOptions);
    const functions = startFunctions(ours);
    let oursRun: Awaited<ReturnType<typeof timeThrough>>;
    let oursWrong: ReturnType<typeof permissionDifferences>;
    let oursDead: number;
    try {
      // The store learns the initial teams first (snapshots: nothing to write), untimed.
      await ours.send(warmupEvents(world, base));
      await ours.drain({ timeoutMs: drainTimeoutMs });
      oursRun = await timeThrough(ours, reorg.events);
      oursWrong = permissionDifferences(ours.sim.permissions(), expected);
      oursDead = (await ours.deadLetters()).length;
    } finally {
      await functions.stop();
      await ours.stop();
    }
    const rateLimitWaits = functions.counters('accessChanges').RateLimitWaits ?? 0;

    const prefix = reorg.events.slice(0, options.sizes.throughputNaiveEvents);
    progress(`throughput: naive, the first ${prefix.length} events`);
    const naiveStack = await startLocalStack(stackOptions);
    const services: SwrServices[] = [];
    const pollers: Poller[] = [];
    let naiveRun: Awaited<ReturnType<typeof timeThrough>>;
    let naiveDeliveries = { received: 0, failed: 0 };
    try {
      const naive = createNaiveSync({
        policy: parsePolicy(world.policyYaml, policyFile),
        concurrency: options.sizes.concurrency,
        initialTeams: world.initialTeams,
      });
      for (const queue of ['accessChanges', 'offboarding'] as const) {
        const refs = naiveStack.sqs.queues[queue];
        const source = eventSourceOf(queue);
        const handlers = Array.from({ length: source.maximumConcurrency }, () => {
          const client = servicesFor(naiveStack.sim, {
            SWR_MAX_CONCURRENCY: String(options.sizes.concurrency),
          });
          services.push(client);
          return createNaiveSqsHandler(naive, client.swr);
        });
        pollers.push(
          startPoller({
            sqs: naiveStack.sqs.client,
            queue: refs,
            functionName: `naive-${refs.functionName}`,
            handler: handlers,
            fifo: refs.fifo,
            ...source,
            functionTimeoutMs: queuesConfig.functionTimeoutSeconds * 1000,
            retryVisibilitySeconds: 1,
            logger: { warn: () => undefined, error: () => undefined },
          }),
        );
      }
      naiveRun = await timeThrough(naiveStack, prefix);
      // The naive handler trusts event order and fails an event SWR refuses; SQS delivers it again.
      naiveDeliveries = pollers
        .map((poller) => poller.stats())
        .reduce(
          (sum, stats) => ({ received: sum.received + stats.received, failed: sum.failed + stats.failed }),
          {
            received: 0,
            failed: 0,
          },
        );
    } finally {
      await Promise.all(pollers.map((poller) => poller.stop()));
      await Promise.all(services.map((client) => client.close()));
      await naiveStack.stop();
    }

    const n = reorg.events.length;
    const label = `naive handler behind the same pollers and queues, one client per instance; first ${prefix.length} events`;
    return {
      rows: [
        {
          section: 'throughput',
          metric: `events per second (${options.sizes.latencyMs} ms per SWR call)`,
          unit: 'ev/s',
          ours: (n / oursRun.ms) * 1000,
          baseline: (prefix.length / naiveRun.ms) * 1000,
          baselineLabel: label,
          note: `target ≥ 10×; ours ${n} events in ${(oursRun.ms / 1000).toFixed(1)} s, ${oursWrong.count} wrong levels, ${oursDead} dead letters`,
        },
        {
          section: 'throughput',
          metric: 'SWR requests per event through the stack',
          unit: '',
          ours: oursRun.counts.swr / n,
          baseline: naiveRun.counts.swr / prefix.length,
          baselineLabel: label,
          note: `naive: ${naiveDeliveries.received} deliveries of ${prefix.length} messages (${naiveDeliveries.failed} handed back and delivered again: each delivery applies its event from the start)`,
        },
      ],
      details: {
        events: n,
        naiveEvents: prefix.length,
        latencyMs: options.sizes.latencyMs,
        eventSources: {
          accessChanges: eventSourceOf('accessChanges'),
          offboarding: eventSourceOf('offboarding'),
        },
        ours: {
          ...oursRun,
          wrongPermissions: oursWrong.count,
          wrongSample: oursWrong.sample,
          deadLetters: oursDead,
          rateLimitWaits,
          batches: {
            accessChanges: functions.batches('accessChanges'),
            offboarding: functions.batches('offboarding'),
          },
          pollerWarnings: functions.warnings(),
        },
        naive: { ...naiveRun, deliveries: naiveDeliveries },
      },
    };
  } finally {
    prepared.cleanup();
  }
};

export { runThroughputScenario };

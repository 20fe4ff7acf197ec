/**
 * 2. Throughput: events per second through the local stack (fauxqs + Lambda-like pollers +
 * handlers + the simulator with latency on every request), ours against the naive baseline driven
 * the same way (same queues, same poller settings, a naive handler).
 */
import queuesConfig from '../../config/queues.json' with { type: 'json' };
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import { type Poller, startPoller } from '../../lib/local/poller.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { silentLog } from '../../lib/observability.ts';
import { parseSeed } from '../../lib/sim/index.ts';
import type { BenchOptions } from '../args.ts';
import { classifyCounts, countsSince } from '../counts.ts';
import { servicesFor } from '../drive.ts';
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

/** Loads the membership store with the initial teams (snapshots) before anything is timed. */
const warmUp = async (local: LocalStack, events: readonly unknown[]): Promise<void> => {
  await local.send(events);
  await local.drain({ timeoutMs: drainTimeoutMs });
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
  };
  try {
    progress(`throughput: ours, ${reorg.events.length} events, ${options.sizes.latencyMs} ms latency`);
    const ours = await startLocalStack(stackOptions);
    let oursRun: Awaited<ReturnType<typeof timeThrough>>;
    let oursWrong: ReturnType<typeof permissionDifferences>;
    let oursDead: number;
    try {
      await warmUp(ours, warmupEvents(world, base));
      oursRun = await timeThrough(ours, reorg.events);
      oursWrong = permissionDifferences(ours.sim.permissions(), expected);
      oursDead = (await ours.deadLetters()).length;
    } finally {
      await ours.stop();
    }

    progress(`throughput: naive, ${reorg.events.length} events`);
    const naiveStack = await startLocalStack({ ...stackOptions, startPollers: false });
    const services = servicesFor(naiveStack.sim);
    const pollers: Poller[] = [];
    let naiveRun: Awaited<ReturnType<typeof timeThrough>>;
    let naiveWrong: ReturnType<typeof permissionDifferences>;
    try {
      const handler = createNaiveSqsHandler(
        createNaiveSync({
          swr: services.swr,
          policy: parsePolicy(world.policyYaml, policyFile),
          concurrency: options.sizes.concurrency,
          initialTeams: world.initialTeams,
        }),
      );
      for (const queue of ['accessChanges', 'offboarding'] as const) {
        const refs = naiveStack.sqs.queues[queue];
        pollers.push(
          startPoller({
            sqs: naiveStack.sqs.client,
            queue: refs,
            functionName: `naive-${refs.functionName}`,
            handler,
            batchSize: refs.batchSize,
            maximumConcurrency: refs.maximumConcurrency,
            functionTimeoutMs: queuesConfig.functionTimeoutSeconds * 1000,
            retryVisibilitySeconds: 1,
          }),
        );
      }
      naiveRun = await timeThrough(naiveStack, reorg.events);
      naiveWrong = permissionDifferences(naiveStack.sim.permissions(), expected);
    } finally {
      await Promise.all(pollers.map((poller) => poller.stop()));
      await services.close();
      await naiveStack.stop();
    }

    const n = reorg.events.length;
    const label = 'naive handler, same poller and queues';
    return {
      rows: [
        {
          section: 'throughput',
          metric: `events per second (${options.sizes.latencyMs} ms SWR latency)`,
          unit: 'ev/s',
          ours: (n / oursRun.ms) * 1000,
          baseline: (n / naiveRun.ms) * 1000,
          baselineLabel: label,
        },
        {
          section: 'throughput',
          metric: 'time to drain',
          unit: 'ms',
          ours: oursRun.ms,
          baseline: naiveRun.ms,
          baselineLabel: label,
        },
      ],
      details: {
        events: n,
        latencyMs: options.sizes.latencyMs,
        ours: {
          ...oursRun,
          wrongPermissions: oursWrong.count,
          wrongSample: oursWrong.sample,
          deadLetters: oursDead,
        },
        naive: { ...naiveRun, wrongPermissions: naiveWrong.count, wrongSample: naiveWrong.sample },
      },
    };
  } finally {
    prepared.cleanup();
  }
};

export { runThroughputScenario };

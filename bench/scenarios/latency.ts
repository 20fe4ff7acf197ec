/**
 * 4. Join → grant latency on a quiet system: the price of the batching window. Through the local
 * stack with the deployed configuration (access-changes: batches of up to 1000 gathered through a
 * 1 s window), one join at a time, each of a new user to a team, timed from just before its
 * SendMessageBatch to the instant of the audit record of that user's LAST grant of the team (the
 * end of the stage's converge: the calls, their read-back and the store re-check). The baseline is
 * the same stack and handler with access-changes read without a window in batches of 10: the gap
 * between the two is what the window costs a lone event.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { startLocalStack } from '../../lib/local/stack.ts';
import { parseSeed } from '../../lib/sim/index.ts';
import type { BenchOptions } from '../args.ts';
import { type EventSource, eventSourceOf, startFunctions } from '../functions.ts';
import { summarize } from '../stats.ts';
import type { ResultRow } from '../table.ts';
import { type BenchWorld, desiredOf } from '../workload.ts';
import { filteringLog, prepareWorld, progress, type ScenarioResult } from './common.ts';

/** A join whose grants do not show by then is counted as lost (and fails the scenario's check). */
const sampleTimeoutMs = 30_000;
/** Quiet time between two joins: the next one never meets the previous one's batch. */
const pauseMs = 300;

interface LatencyRun {
  source: EventSource;
  latenciesMs: number[];
  /** Joins whose every grant was not seen in time. */
  missing: number;
}

const timeJoins = async (
  world: BenchWorld,
  policyFile: string,
  options: BenchOptions,
  source: Partial<EventSource>,
): Promise<LatencyRun> => {
  const grants = new Map<string, { count: number; lastAt: number }>();
  const log = filteringLog((message, attributes) => {
    if (message !== 'access changed' || attributes.after === 'none') return;
    const userId = String(attributes.userId);
    const seen = grants.get(userId) ?? { count: 0, lastAt: 0 };
    grants.set(userId, {
      count: seen.count + 1,
      lastAt: Math.max(seen.lastAt, Date.parse(String(attributes.at))),
    });
  });
  const stack = await startLocalStack({
    seed: parseSeed(world.seed),
    policyFile,
    latencyMs: options.sizes.latencyMs,
    env: { SWR_MAX_CONCURRENCY: String(options.sizes.concurrency) },
    startPollers: false,
  });
  const functions = startFunctions(stack, { accessChanges: { source, log } });
  const latenciesMs: number[] = [];
  let missing = 0;
  try {
    for (let i = 0; i < options.sizes.latencySamples; i += 1) {
      const user = world.floodUsers[i % world.floodUsers.length];
      const team = world.teams[i % world.teams.length] as string;
      if (user === undefined) break;
      const expected = desiredOf(world, [team]).size;
      const sentAt = Date.now();
      await stack.send([
        {
          id: `latency-${options.seed}-${i}`,
          type: 'membership.added',
          team,
          occurredAt: new Date(sentAt).toISOString(),
          source: 'bench',
          user,
        },
      ]);
      const until = Date.now() + sampleTimeoutMs;
      while ((grants.get(user.id)?.count ?? 0) < expected && Date.now() < until) await delay(5);
      const seen = grants.get(user.id);
      if (seen === undefined || seen.count < expected) missing += 1;
      else latenciesMs.push(seen.lastAt - sentAt);
      await stack.drain({ timeoutMs: sampleTimeoutMs });
      await delay(pauseMs);
    }
  } finally {
    await functions.stop();
    await stack.stop();
  }
  return { source: eventSourceOf('accessChanges', { source }), latenciesMs, missing };
};

/**
 * @example const { rows } = await runLatencyScenario(options);
 */
const runLatencyScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const prepared = prepareWorld(options, true);
  try {
    const deployed = eventSourceOf('accessChanges');
    progress(
      `latency: ${options.sizes.latencySamples} joins one at a time, batches ≤ ${deployed.batchSize} through a ${deployed.maximumBatchingWindowSeconds} s window`,
    );
    const ours = await timeJoins(prepared.world, prepared.policyFile, options, {});
    progress(`latency: the same joins, batches ≤ 10 and no window`);
    const noWindow = await timeJoins(prepared.world, prepared.policyFile, options, {
      batchSize: 10,
      maximumBatchingWindowSeconds: 0,
    });
    const during = summarize(ours.latenciesMs);
    const quiet = summarize(noWindow.latenciesMs);
    const label = 'same handler, access-changes read in batches ≤ 10 with no window';
    const row = (metric: string, key: 'p50' | 'p99', note?: string): ResultRow => ({
      section: 'latency',
      metric,
      unit: 'ms',
      ours: during[key],
      baseline: quiet[key],
      baselineLabel: label,
      ...(note === undefined ? {} : { note }),
    });
    return {
      rows: [
        row('join → grant p50, quiet system', 'p50'),
        row(
          'join → grant p99, quiet system',
          'p99',
          `target ≤ 3 s; the ${deployed.maximumBatchingWindowSeconds} s window is the price; ${ours.missing + noWindow.missing} join(s) not granted in ${sampleTimeoutMs / 1000} s`,
        ),
      ],
      details: {
        latencyDefinition:
          'just before SendMessageBatch of the join → the audit instant of the last grant of that user for the team',
        samples: options.sizes.latencySamples,
        ours: { ...ours, summary: during },
        noWindow: { ...noWindow, summary: quiet },
      },
    };
  } finally {
    prepared.cleanup();
  }
};

export { runLatencyScenario };

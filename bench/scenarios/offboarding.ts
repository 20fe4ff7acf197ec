/**
 * 3. Offboarding latency and 5. memory. Offboardings are sent one by one, `offboardIntervalMs`
 * apart, while a flood of joins fills access-changes (part `flood`), and again with no flood
 * (part `baseline`); each part runs in its own process.
 *
 * Latency = from just before the offboarding's SendMessageBatch to the LAST revoke of that user,
 * taken from the pipeline's audit records ("access changed", after = none): each carries the
 * instant the executor finished the call round that revoked. The simulator's request log cannot
 * tell whose DELETE it was (the user ids are in the body) and is capped at 10,000 entries, and
 * polling `permissions()` would load the simulator we are measuring. At the end the simulator is
 * checked: no offboarded user may hold anything.
 *
 * Memory: RSS sampled every 50 ms while the flood is processed (peak), against the RSS of the
 * same stack idle after the warm-up (median of 10 samples); `maxRSS` as the kernel reports it.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { seededRandom } from '../../lib/random.ts';
import { parseSeed } from '../../lib/sim/index.ts';
import { type BenchOptions, BenchUsageError } from '../args.ts';
import { median, summarize } from '../stats.ts';
import type { ResultRow } from '../table.ts';
import { type BenchUser, joinFlood, offboardingOf, warmupEvents } from '../workload.ts';
import { filteringLog, prepareWorld, progress, type ScenarioResult } from './common.ts';

const drainTimeoutMs = 20 * 60 * 1000;

interface OffboardingPart {
  part: 'baseline' | 'flood';
  offboardings: number;
  flood: number;
  latenciesMs: number[];
  /** Offboarded users still holding a permission at the end (must be 0). */
  leftovers: number;
  /** Offboarded users without any revoke seen (they held nothing: must be 0 by construction). */
  unseen: number;
  idleRssBytes: number;
  peakRssBytes: number;
  maxRssBytes: number;
  ms: number;
}

const rssSampler = (everyMs: number) => {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, everyMs);
  return {
    stop(): number {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage().rss);
    },
  };
};

const idleRss = async (): Promise<number> => {
  const samples: number[] = [];
  for (let i = 0; i < 10; i += 1) {
    samples.push(process.memoryUsage().rss);
    await delay(50);
  }
  return median(samples);
};

/** The users to offboard: population users who hold something at the start, seeded choice. */
const victimsOf = (
  users: readonly BenchUser[],
  teams: ReadonlyMap<string, string[]>,
  count: number,
  seed: number,
) => {
  const random = seededRandom(seed);
  const holders = users.filter((user) => (teams.get(user.id) ?? []).length > 0);
  const chosen: BenchUser[] = [];
  while (chosen.length < count && holders.length > 0)
    chosen.push(holders.splice(Math.floor(random() * holders.length), 1)[0] as BenchUser);
  return chosen;
};

const heldBy = (stack: LocalStack, userIds: ReadonlySet<string>): number => {
  const snapshot = stack.sim.permissions();
  const holders = new Set<string>();
  for (const bucket of [snapshot.repos, snapshot.namespaces])
    for (const users of Object.values(bucket))
      for (const id of Object.keys(users)) if (userIds.has(id)) holders.add(id);
  return holders.size;
};

/**
 * One part in this process.
 *
 * @example const part = await runOffboardingPart(options, 'flood');
 */
const runOffboardingPart = async (
  options: BenchOptions,
  part: 'baseline' | 'flood',
): Promise<OffboardingPart> => {
  const withFlood = part === 'flood';
  const prepared = prepareWorld(options, withFlood);
  const { world, policyFile } = prepared;
  const victims = victimsOf(world.users, world.initialTeams, options.sizes.offboardings, options.seed + 3);
  const tracked = new Set(victims.map((user) => user.id));
  const lastRevoke = new Map<string, number>();
  const log = filteringLog((message, attributes) => {
    if (message !== 'access changed' || attributes.after !== 'none') return;
    const userId = String(attributes.userId);
    if (!tracked.has(userId)) return;
    const at = Date.parse(String(attributes.at));
    lastRevoke.set(userId, Math.max(lastRevoke.get(userId) ?? 0, at));
  });
  const base = Date.now() - 6 * 60 * 60 * 1000;
  const stack = await startLocalStack({
    seed: parseSeed(world.seed),
    policyFile,
    latencyMs: options.sizes.latencyMs,
    log,
    env: { SWR_MAX_CONCURRENCY: String(options.sizes.concurrency) },
  });
  try {
    progress(`offboarding/${part}: warm-up (${world.users.length} snapshots)`);
    await stack.send(warmupEvents(world, base));
    await stack.drain({ timeoutMs: drainTimeoutMs });
    const idle = await idleRss();
    const sampler = rssSampler(50);
    const startedAt = performance.now();
    const floodEvents = withFlood
      ? joinFlood(world, {
          count: options.sizes.flood,
          seed: options.seed + 4,
          startMs: base + 60_000,
          stepMs: 10,
        })
      : [];
    progress(
      `offboarding/${part}: ${victims.length} offboardings${withFlood ? ` during ${floodEvents.length} joins` : ''}`,
    );
    const flooding = stack.send(floodEvents);
    // Let the flood get ahead first: the offboardings should meet a busy stack.
    if (withFlood) await delay(1000);
    const enqueuedAt = new Map<string, number>();
    for (const [index, user] of victims.entries()) {
      enqueuedAt.set(user.id, Date.now());
      await stack.send([offboardingOf(user, `offboard-${options.seed}-${index}`, new Date())]);
      await delay(options.sizes.offboardIntervalMs);
    }
    await flooding;
    let reportedAt = performance.now();
    await stack.drain({
      timeoutMs: drainTimeoutMs,
      onProgress: (remaining) => {
        if (remaining === 0 || performance.now() - reportedAt < 10_000) return;
        reportedAt = performance.now();
        progress(`offboarding/${part}: ${remaining} messages left`);
      },
    });
    const ms = performance.now() - startedAt;
    const peak = sampler.stop();
    const latenciesMs = victims.flatMap((user) => {
      const done = lastRevoke.get(user.id);
      const sent = enqueuedAt.get(user.id);
      return done === undefined || sent === undefined ? [] : [done - sent];
    });
    return {
      part,
      offboardings: victims.length,
      flood: floodEvents.length,
      latenciesMs,
      leftovers: heldBy(stack, tracked),
      unseen: victims.length - latenciesMs.length,
      idleRssBytes: idle,
      peakRssBytes: peak,
      maxRssBytes: process.resourceUsage().maxRSS * 1024,
      ms,
    };
  } finally {
    await stack.stop();
    prepared.cleanup();
  }
};

const mib = (bytes: number): number => bytes / 2 ** 20;

/**
 * Combines the two parts into rows: latency percentiles (flood vs no flood) and memory (peak during
 * the flood vs the idle stack).
 */
const combineOffboarding = (baseline: OffboardingPart, flood: OffboardingPart): ScenarioResult => {
  const during = summarize(flood.latenciesMs);
  const quiet = summarize(baseline.latenciesMs);
  const label = `same ${baseline.offboardings} offboardings, no flood`;
  const latencyRow = (metric: string, key: 'p50' | 'p95' | 'p99'): ResultRow => ({
    section: 'offboarding',
    metric,
    unit: 'ms',
    ours: during[key],
    baseline: quiet[key],
    baselineLabel: label,
    note: `${flood.flood} joins flooding access-changes`,
  });
  return {
    rows: [
      latencyRow('enqueue → last revoke p50', 'p50'),
      latencyRow('enqueue → last revoke p95', 'p95'),
      latencyRow('enqueue → last revoke p99', 'p99'),
      {
        section: 'memory',
        metric: `peak RSS while processing ${flood.flood} joins`,
        unit: 'MiB',
        ours: mib(flood.peakRssBytes),
        baseline: mib(flood.idleRssBytes),
        baselineLabel: 'RSS of the idle stack (after warm-up)',
        note: `process maxRSS ${mib(flood.maxRssBytes).toFixed(0)} MiB; whole stack in one process`,
      },
    ],
    details: {
      latencyDefinition:
        'enqueue (just before SendMessageBatch of the offboarding) → audit record of the last revoke of that user',
      flood: { ...flood, summary: during },
      baseline: { ...baseline, summary: quiet },
    },
  };
};

/**
 * @example await runOffboardingScenario(options, 'flood') // details.part holds one part
 */
const runOffboardingScenario = async (options: BenchOptions, part?: string): Promise<ScenarioResult> => {
  if (part !== 'baseline' && part !== 'flood')
    throw new BenchUsageError(`offboarding needs a part: baseline or flood, got ${part}`);
  return { rows: [], details: { part: await runOffboardingPart(options, part) } };
};

export type { OffboardingPart };
export { combineOffboarding, runOffboardingScenario };

/**
 * 4. Offboarding latency and 5. memory. Offboardings are sent one by one, `offboardIntervalMs`
 * apart, while a flood of joins fills access-changes (part `flood`), and again with no flood
 * (part `baseline`); each part runs in its own process. Both functions run as deployed (each
 * queue's batch size, window and instances from config/queues.json, the default per-instance rate
 * limit), and each access-changes instance runs in a child process of its own
 * (`bench/instance-process.ts`), as a Lambda instance would: its memory is measured alone, with
 * the V8 heap the Lambda runtime gives its 512 MB function (`bench/lambda-node.ts`).
 *
 * What the flood may share with an offboarding is what it shares on AWS: the queues' service,
 * the table, the SWR API (the emulators and the simulator here), never a CPU: Lambda gives every
 * instance a CPU share of its own. On a machine of two cores the flood's two busy instances would
 * take the CPU the emulators and the offboard instances need, so in both parts they run at the
 * lowest CPU priority: they get all the CPU nobody else wants. Part `flood-shared` runs the same
 * flood with them as plain processes of this machine (same priority as the rest, V8 sized for its
 * memory), so the table also shows what a single shared machine would give.
 *
 * Latency = from just before the offboarding's SendMessageBatch to the LAST revoke of that user's
 * known grants, taken from the audit records ("access changed", after = none) of the offboard
 * function's batches of the offboarding queue: their instant is the end of the stage's converge
 * (the calls, their read-back, the store re-check). The sweep (every other target) is done later
 * from the sweep queue, many leavers per batch: its delay is a row of its own, enqueue → the
 * "offboarding proven" log record of the sweep batches (`provenAt`: every target checked).
 * The simulator's request log cannot tell whose DELETE it was (the user ids are in the body) and
 * is capped at 10,000 entries, and polling `permissions()` would load the simulator we are
 * measuring. At the end the simulator is checked: no offboarded user may hold anything.
 *
 * Memory: the RSS of each access-changes instance process, sampled every 50 ms by the process
 * itself while the flood is processed (the peak of the busier one), against the RSS of the same
 * instance idle after the warm-up; the kernel's maxRSS of each is kept too.
 */
import { constants } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import queuesConfig from '../../config/queues.json' with { type: 'json' };
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { seededRandom } from '../../lib/random.ts';
import { parseSeed } from '../../lib/sim/index.ts';
import { type BenchOptions, BenchUsageError } from '../args.ts';
import { deployedMemorySizeMb } from '../bundles.ts';
import { eventSourceOf, startFunctions } from '../functions.ts';
import {
  bundleInstanceHost,
  type InstanceMemory,
  type InstanceProcess,
  type InstanceProcessOptions,
  startInstanceProcess,
} from '../instance-process.ts';
import { summarize } from '../stats.ts';
import type { ResultRow } from '../table.ts';
import { type BenchUser, joinFlood, offboardingOf, warmupEvents } from '../workload.ts';
import { filteringLog, prepareWorld, progress, type ScenarioResult } from './common.ts';

const drainTimeoutMs = 20 * 60 * 1000;

const partNames = ['baseline', 'flood', 'flood-shared'] as const;
type PartName = (typeof partNames)[number];

/** How a part runs the access-changes instances (see the module comment). */
const instanceOptionsOf = (part: PartName): InstanceProcessOptions =>
  part === 'flood-shared'
    ? { runtime: 'plain' }
    : { runtime: 'lambda', cpuPriority: constants.priority.PRIORITY_LOW };

interface OffboardingPart {
  part: PartName;
  offboardings: number;
  flood: number;
  latenciesMs: number[];
  /** Enqueue → "offboarding proven" (the sweep of every other target finished), per user. */
  provenMs: number[];
  /** Offboarded users whose sweep was not proven by the end (must be 0). */
  unproven: number;
  /** How long each offboarding's send took (the producer's SendMessageBatch), ms. */
  sendMs: number[];
  /**
   * Event-loop delay of this process (simulator, emulators, pollers, offboard instances) during
   * the measured phase, ms: how long a ready callback waited for the CPU.
   */
  loopDelayMs: { p50: number; p99: number; max: number };
  /** Batches of the sweep queue (sizes): how many leavers shared a pass. */
  sweepBatches: number[];
  /** SWR requests and rate-limit waits of the offboarding queue's instances (known grants). */
  knownGrantCalls: { requests: number; rateLimitWaits: number; batches: number };
  /** Offboarded users still holding a permission at the end (must be 0). */
  leftovers: number;
  /** Offboarded users without any revoke seen (they held nothing: must be 0 by construction). */
  unseen: number;
  /** Per access-changes instance process: after the warm-up, idle. */
  idleInstances: InstanceMemory[];
  /** Per access-changes instance process: at the end (peak since the warm-up). */
  busyInstances: InstanceMemory[];
  /** The process that runs the rest of the stack (simulator, fauxqs, dynalite, pollers, offboard). */
  stackPeakRssBytes: number;
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
const runOffboardingPart = async (options: BenchOptions, part: PartName): Promise<OffboardingPart> => {
  const withFlood = part !== 'baseline';
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
  const provenAt = new Map<string, number>();
  const sweepLog = filteringLog((message, attributes) => {
    if (message !== 'offboarding proven') return;
    const userId = String(attributes.userId);
    if (tracked.has(userId)) provenAt.set(userId, Date.parse(String(attributes.provenAt)));
  });
  const base = Date.now() - 6 * 60 * 60 * 1000;
  const stack = await startLocalStack({
    seed: parseSeed(world.seed),
    policyFile,
    latencyMs: options.sizes.latencyMs,
    env: { SWR_MAX_CONCURRENCY: String(options.sizes.concurrency) },
    startPollers: false,
  });
  const instances: InstanceProcess[] = [];
  let functions: ReturnType<typeof startFunctions> | undefined;
  try {
    const script = await bundleInstanceHost(join(prepared.dir, 'instance'));
    for (let i = 0; i < eventSourceOf('accessChanges').maximumConcurrency; i += 1)
      instances.push(await startInstanceProcess(script, stack, 'accessChanges', instanceOptionsOf(part)));
    functions = startFunctions(stack, {
      accessChanges: { handlers: instances.map((instance) => instance.handler) },
      offboarding: { log },
      offboardingSweeps: { log: sweepLog },
    });
    progress(`offboarding/${part}: warm-up (${world.users.length} snapshots)`);
    await stack.send(warmupEvents(world, base));
    await stack.drain({ timeoutMs: drainTimeoutMs });
    await delay(500);
    const idleInstances = await Promise.all(instances.map((instance) => instance.memory()));
    for (const instance of instances) instance.resetPeak();
    const sampler = rssSampler(50);
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
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
    const sendMs: number[] = [];
    for (const [index, user] of victims.entries()) {
      enqueuedAt.set(user.id, Date.now());
      const sending = performance.now();
      await stack.send([offboardingOf(user, `offboard-${options.seed}-${index}`, new Date())]);
      sendMs.push(performance.now() - sending);
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
    const stackPeak = sampler.stop();
    loop.disable();
    const loopDelayMs = {
      p50: loop.percentile(50) / 1e6,
      p99: loop.percentile(99) / 1e6,
      max: loop.max / 1e6,
    };
    const busyInstances = await Promise.all(instances.map((instance) => instance.memory()));
    const latenciesMs = victims.flatMap((user) => {
      const done = lastRevoke.get(user.id);
      const sent = enqueuedAt.get(user.id);
      return done === undefined || sent === undefined ? [] : [done - sent];
    });
    const provenMs = victims.flatMap((user) => {
      const done = provenAt.get(user.id);
      const sent = enqueuedAt.get(user.id);
      return done === undefined || sent === undefined ? [] : [done - sent];
    });
    return {
      part,
      offboardings: victims.length,
      flood: floodEvents.length,
      latenciesMs,
      provenMs,
      unproven: victims.length - provenMs.length,
      sendMs,
      loopDelayMs,
      sweepBatches: functions.batches('offboardingSweeps'),
      knownGrantCalls: {
        requests: functions.counters('offboarding').ApiCalls ?? 0,
        rateLimitWaits: functions.counters('offboarding').RateLimitWaits ?? 0,
        batches: functions.batches('offboarding').length,
      },
      leftovers: heldBy(stack, tracked),
      unseen: victims.length - latenciesMs.length,
      idleInstances,
      busyInstances,
      stackPeakRssBytes: stackPeak,
      ms,
    };
  } finally {
    await functions?.stop();
    await Promise.all(instances.map((instance) => instance.stop()));
    await stack.stop();
    prepared.cleanup();
  }
};

const mib = (bytes: number): number => bytes / 2 ** 20;

/** The busier access-changes instance of a part (highest peak RSS), with its idle figures. */
const busiestInstanceOf = (part: OffboardingPart): { busy: InstanceMemory; idle: InstanceMemory } => {
  const index = part.busyInstances.reduce(
    (best, memory, at) => (memory.peakRss > (part.busyInstances[best]?.peakRss ?? 0) ? at : best),
    0,
  );
  return {
    busy: part.busyInstances[index] as InstanceMemory,
    idle: part.idleInstances[index] as InstanceMemory,
  };
};

/** What the offboard instances did in a part and how busy the stack's process was: for a note. */
const partDiagnostics = (part: OffboardingPart): string =>
  `${part.knownGrantCalls.requests} SWR requests in ${part.knownGrantCalls.batches} batches, ${part.knownGrantCalls.rateLimitWaits} rate-limit waits; send p99 ${Math.round(summarize(part.sendMs).p99)} ms; event-loop delay of the stack's process p99 ${Math.round(part.loopDelayMs.p99)} ms, max ${Math.round(part.loopDelayMs.max)}`;

/**
 * Combines the parts into rows: latency percentiles (flood vs no flood), the same flood on a shared
 * CPU, the sweep, and memory (peak during the flood vs the idle instance), as Lambda sizes it and
 * as a plain process.
 */
const combineOffboarding = (
  baseline: OffboardingPart,
  flood: OffboardingPart,
  shared: OffboardingPart,
): ScenarioResult => {
  const during = summarize(flood.latenciesMs);
  const quiet = summarize(baseline.latenciesMs);
  const onShared = summarize(shared.latenciesMs);
  const sweptDuring = summarize(flood.provenMs);
  const sweptQuiet = summarize(baseline.provenMs);
  const label = `same ${baseline.offboardings} offboardings, no flood`;
  const leftovers = flood.leftovers + baseline.leftovers + shared.leftovers;
  const latencyRow = (metric: string, key: 'p50' | 'p95' | 'p99'): ResultRow => ({
    section: 'offboarding',
    metric,
    unit: 'ms',
    ours: during[key],
    baseline: quiet[key],
    baselineLabel: label,
    note: `${flood.flood} joins flooding access-changes (its instances at the lowest CPU priority: no CPU is shared on Lambda)${key === 'p99' ? `; target < 1 s, flood/no flood ≤ 1.1; ${leftovers} offboarded user(s) still holding something; the known grants only (the sweep: below); offboarding instances with the flood: ${partDiagnostics(flood)}; without: ${partDiagnostics(baseline)}` : ''}`,
  });
  const memoryRow = (part: OffboardingPart, how: string, target: string): ResultRow => {
    const { busy, idle } = busiestInstanceOf(part);
    return {
      section: 'memory',
      metric: `peak RSS of one access-changes instance while processing ${part.flood} joins, ${how}`,
      unit: 'MiB',
      ours: mib(busy.peakRss),
      baseline: mib(idle.rss),
      baselineLabel: 'RSS of the same instance idle after the warm-up',
      note: `${target}; an instance per child process; its maxRSS ${mib(busy.maxRss).toFixed(0)} MiB, V8 heap used at the peak ${mib(busy.atPeak.heapUsed).toFixed(0)} MiB of ${mib(busy.atPeak.heapTotal).toFixed(0)} MiB; the rest of the stack in one process peaked at ${mib(part.stackPeakRssBytes).toFixed(0)} MiB`,
    };
  };
  return {
    rows: [
      latencyRow('enqueue → last revoke p50', 'p50'),
      latencyRow('enqueue → last revoke p95', 'p95'),
      latencyRow('enqueue → last revoke p99', 'p99'),
      {
        section: 'offboarding',
        metric: 'enqueue → last revoke p99, flood sharing the CPU',
        unit: 'ms',
        ours: onShared.p99,
        baseline: quiet.p99,
        baselineLabel: label,
        note: `the same flood with its instances as plain processes of this machine, at the same CPU priority as the emulators and the offboard instances: what one machine of few cores gives, not Lambda; p50 ${Math.round(onShared.p50)} ms; offboarding instances: ${partDiagnostics(shared)}`,
      },
      {
        section: 'offboarding',
        metric: 'enqueue → sweep proven p99',
        unit: 'ms',
        ours: sweptDuring.p99,
        baseline: sweptQuiet.p99,
        baselineLabel: label,
        note: `every other target (policy and managed namespaces) checked, from the sweep queue (batches ≤ ${eventSourceOf('offboardingSweeps').batchSize}, ${eventSourceOf('offboardingSweeps').maximumBatchingWindowSeconds} s window); p50 ${Math.round(sweptDuring.p50)} ms (no flood ${Math.round(sweptQuiet.p50)}); sweep batches ${flood.sweepBatches.length} (no flood ${baseline.sweepBatches.length}); ${flood.unproven + baseline.unproven + shared.unproven} offboarding(s) not proven by the end`,
      },
      memoryRow(
        flood,
        `node as Lambda runs it (${deployedMemorySizeMb(queuesConfig.queues.accessChanges.function)} MB)`,
        'target < 256 MiB',
      ),
      memoryRow(
        shared,
        'as a plain process of this machine',
        'V8 sizing its heap for this machine (for comparison: the target is for the row above)',
      ),
    ],
    details: {
      latencyDefinition:
        'enqueue (just before SendMessageBatch of the offboarding) → audit record of the last revoke of that user by the offboarding queue (known grants)',
      sweepDefinition:
        'enqueue (just before SendMessageBatch of the offboarding) → provenAt of the "offboarding proven" record of the sweep queue',
      flood: { ...flood, summary: during },
      baseline: { ...baseline, summary: quiet },
      floodShared: { ...shared, summary: onShared },
    },
  };
};

/**
 * @example await runOffboardingScenario(options, 'flood') // details.part holds one part
 */
const runOffboardingScenario = async (options: BenchOptions, part?: string): Promise<ScenarioResult> => {
  const name = partNames.find((candidate) => candidate === part);
  if (name === undefined)
    throw new BenchUsageError(`offboarding needs a part: ${partNames.join(', ')}; got ${part}`);
  return { rows: [], details: { part: await runOffboardingPart(options, name) } };
};

export type { OffboardingPart, PartName };
export { combineOffboarding, partNames, runOffboardingScenario };

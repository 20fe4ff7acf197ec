/**
 * 1. API calls per event, and 6. retry cost. A reorganisation (joins, leaves, moves, snapshots, a
 * few offboardings) over the generated company, through our pipeline (batches of 10, memory store,
 * the real client against the simulator, no latency) and through the naive baseline, each against
 * a fresh simulator with the same seed. SWR requests are counted by the simulator.
 */
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import type { Policy } from '../../lib/domain.ts';
import { parseSeed, type Simulator, startSimulator } from '../../lib/sim/index.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import type { BenchOptions } from '../args.ts';
import { type CallCounts, classifyCounts, countsSince } from '../counts.ts';
import { driveNaive, drivePipeline, servicesFor } from '../drive.ts';
import { addFloors, type FloorCount, floorOf } from '../floor.ts';
import { createNaiveSync } from '../naive.ts';
import type { ResultRow } from '../table.ts';
import {
  type BenchEvent,
  type BenchWorld,
  expectedPermissions,
  type PermissionMap,
  permissionDifferences,
  reorganisation,
  warmupEvents,
} from '../workload.ts';
import { prepareWorld, progress, type ScenarioResult } from './common.ts';

interface Workload {
  world: BenchWorld;
  policy: Policy;
  warmup: BenchEvent[];
  events: BenchEvent[];
  expected: PermissionMap;
  cleanup(): void;
}

const workloadOf = (options: BenchOptions, count: number): Workload => {
  const prepared = prepareWorld(options);
  // Well in the past, so that every event is older than "now" and none is refused as future.
  const base = Date.now() - 6 * 60 * 60 * 1000;
  const reorg = reorganisation(prepared.world, {
    count,
    seed: options.seed + 1,
    startMs: base + 60_000,
    stepMs: 1000,
  });
  return {
    world: prepared.world,
    policy: parsePolicy(prepared.world.policyYaml, prepared.policyFile),
    warmup: warmupEvents(prepared.world, base),
    events: reorg.events,
    expected: expectedPermissions(prepared.world, reorg.finalTeams),
    cleanup: prepared.cleanup,
  };
};

const eventMix = (events: readonly BenchEvent[]): Record<string, number> => {
  const mix: Record<string, number> = {};
  for (const event of events) mix[event.type] = (mix[event.type] ?? 0) + 1;
  return mix;
};

interface OursRun {
  counts: CallCounts;
  ms: number;
  apiRetries: number;
  redeliveries: number;
  lost: number;
  warmupWrites: number;
  floorOverall: FloorCount;
  floorPerBatch: FloorCount;
  wrongPermissions: number;
  wrongSample: string[];
}

/** Our pipeline over the workload in a fresh simulator; `faults` are switched on after the warm-up. */
const runOurs = async (
  workload: Workload,
  options: BenchOptions,
  faults: Parameters<Simulator['setFaults']>[0] | undefined,
): Promise<OursRun> => {
  const sim = await startSimulator({ seed: parseSeed(workload.world.seed) });
  try {
    const drive = {
      batchSize: 10,
      concurrency: options.sizes.concurrency,
      maxReceives: 5,
      // One store for the warm-up and the run: the warm-up is what tells it the initial teams.
      store: createMemoryStore(),
    };
    const beforeWarmup = sim.requestCounts();
    await drivePipeline(workload.warmup, sim, workload.policy, drive);
    const warmupWrites = classifyCounts(countsSince(beforeWarmup, sim.requestCounts())).writes;
    if (faults !== undefined) sim.setFaults(faults);
    const start = sim.permissions();
    const perBatch: FloorCount[] = [];
    let previous = start;
    const before = sim.requestCounts();
    const report = await drivePipeline(workload.events, sim, workload.policy, {
      ...drive,
      // Snapshots are taken between batches, outside any request: they do not touch the counts.
      afterBatch: () => {
        const now = sim.permissions();
        perBatch.push(floorOf(previous, now));
        previous = now;
      },
    });
    const counts = classifyCounts(countsSince(before, sim.requestCounts()));
    const final = sim.permissions();
    const wrong = permissionDifferences(final, workload.expected);
    return {
      counts,
      ms: report.ms,
      apiRetries: report.apiRetries,
      redeliveries: report.redeliveries,
      lost: report.lost,
      warmupWrites,
      floorOverall: floorOf(start, final),
      floorPerBatch: addFloors(perBatch),
      wrongPermissions: wrong.count,
      wrongSample: wrong.sample,
    };
  } finally {
    await sim.close();
  }
};

const runNaive = async (workload: Workload, options: BenchOptions) => {
  const sim = await startSimulator({ seed: parseSeed(workload.world.seed) });
  const services = servicesFor(sim);
  try {
    const naive = createNaiveSync({
      swr: services.swr,
      policy: workload.policy,
      concurrency: options.sizes.concurrency,
      initialTeams: workload.world.initialTeams,
    });
    const before = sim.requestCounts();
    const run = await driveNaive(workload.events, naive.apply);
    const counts = classifyCounts(countsSince(before, sim.requestCounts()));
    const wrong = permissionDifferences(sim.permissions(), workload.expected);
    return {
      counts,
      ms: run.ms,
      failedEvents: run.failed,
      wrongPermissions: wrong.count,
      wrongSample: wrong.sample,
    };
  } finally {
    await services.close();
    await sim.close();
  }
};

const perEvent = (value: number, events: number): number => value / events;

/**
 * @example const { rows } = await runCallsScenario(options);
 */
const runCallsScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const workload = workloadOf(options, options.sizes.events);
  try {
    const n = workload.events.length;
    progress(`calls: ours over ${n} events`);
    const ours = await runOurs(workload, options, undefined);
    progress(`calls: naive over ${n} events`);
    const naive = await runNaive(workload, options);
    const naiveLabel = 'naive DELETE+POST per user and target';
    const rows: ResultRow[] = [
      {
        section: 'calls',
        metric: 'SWR calls per event (reads + writes)',
        unit: '',
        ours: perEvent(ours.counts.swr, n),
        baseline: perEvent(naive.counts.swr, n),
        baselineLabel: naiveLabel,
      },
      {
        section: 'calls',
        metric: 'SWR writes per event',
        unit: '',
        ours: perEvent(ours.counts.writes, n),
        baseline: perEvent(naive.counts.writes, n),
        baselineLabel: naiveLabel,
      },
      {
        section: 'calls',
        metric: 'SWR writes per event vs floor',
        unit: '',
        ours: perEvent(ours.counts.writes, n),
        baseline: perEvent(ours.floorPerBatch.total, n),
        baselineLabel: 'floor per batch of 10',
        note: `overall floor ${(ours.floorOverall.total / n).toFixed(3)}/event`,
      },
      {
        section: 'calls',
        metric: 'SWR reads (GET) per event',
        unit: '',
        ours: perEvent(ours.counts.reads, n),
        baseline: perEvent(naive.counts.reads, n),
        baselineLabel: naiveLabel,
        note: 'naive never reads',
      },
      {
        section: 'calls',
        metric: 'time for the workload, no latency',
        unit: 'ms',
        ours: ours.ms,
        baseline: naive.ms,
        baselineLabel: naiveLabel,
      },
    ];
    return {
      rows,
      details: {
        events: n,
        eventMix: eventMix(workload.events),
        world: {
          users: workload.world.users.length,
          teams: workload.world.teams.length,
          targets: new Set(
            Object.values(workload.world.teamGrants)
              .flat()
              .map((g) => `${g.namespace}/${g.repository ?? ''}`),
          ).size,
          initialGrants: workload.world.seed.namespaces.reduce(
            (sum, ns) => sum + ns.grants.length + ns.repositories.reduce((s, r) => s + r.grants.length, 0),
            0,
          ),
        },
        floorDefinition:
          'distinct (target, action) pairs between two permission states; per batch = summed over the state before and after each batch of 10 (what any batch-at-a-time implementation must write), overall = initial vs final state',
        ours,
        naive,
      },
    };
  } finally {
    workload.cleanup();
  }
};

/**
 * 6. The same workload under 20 % injected 5xx and 5 % 429, against the same workload without
 * faults (both ours, fresh simulators, production retry policy).
 */
const runRetryScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const workload = workloadOf(options, options.sizes.retryEvents);
  try {
    const n = workload.events.length;
    progress(`retry: ours over ${n} events, no faults`);
    const clean = await runOurs(workload, options, undefined);
    progress(`retry: ours over ${n} events, 20% 5xx + 5% 429`);
    const faulty = await runOurs(workload, options, {
      error5xxRate: 0.2,
      throttle429Rate: 0.05,
      seed: options.seed,
    });
    const label = 'ours without faults';
    return {
      rows: [
        {
          section: 'retry',
          metric: 'SWR requests per event (attempts)',
          unit: '',
          ours: perEvent(faulty.counts.swr, n),
          baseline: perEvent(clean.counts.swr, n),
          baselineLabel: label,
        },
        {
          section: 'retry',
          metric: 'time for the workload',
          unit: 'ms',
          ours: faulty.ms,
          baseline: clean.ms,
          baselineLabel: label,
        },
        {
          section: 'retry',
          metric: 'messages delivered again by "SQS"',
          unit: '',
          ours: faulty.redeliveries,
          baseline: clean.redeliveries,
          baselineLabel: label,
        },
        {
          section: 'retry',
          metric: 'wrong (target, user) levels at the end',
          unit: '',
          ours: faulty.wrongPermissions,
          baseline: clean.wrongPermissions,
          baselineLabel: label,
          note: `${faulty.lost} message(s) past the receive limit`,
        },
      ],
      details: {
        events: n,
        faults: { error5xxRate: 0.2, throttle429Rate: 0.05, seed: options.seed },
        clean,
        faulty,
      },
    };
  } finally {
    workload.cleanup();
  }
};

export { runCallsScenario, runRetryScenario };

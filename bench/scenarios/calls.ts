/**
 * 1. API calls per event, and 6. retry cost. A reorganisation (joins, leaves, moves, snapshots, a
 * few offboardings) over the generated company, through our pipeline in the shape the deployed
 * configuration gives it (`bench/drive.ts`: each queue's batch size and instances from
 * config/queues.json, one SWR client per instance; memory store; the simulator without latency;
 * no rate limit, since only counts matter here) and through the naive baseline, each against a
 * fresh simulator with the same seed. SWR requests are counted by the simulator; ours are also
 * counted by stage and kind as the pipeline makes them (`bench/ledger.ts`).
 */
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import type { Policy } from '../../lib/domain.ts';
import type { QueueName } from '../../lib/runtime.ts';
import { parseSeed, type Simulator, startSimulator } from '../../lib/sim/index.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import type { BenchOptions } from '../args.ts';
import { type CallCounts, classifyCounts, countsSince } from '../counts.ts';
import { deployedShapes, driveNaive, drivePipeline, type QueueShape, servicesFor } from '../drive.ts';
import { type FloorCount, floorOf } from '../floor.ts';
import { type LedgerCounts, type LedgerTotals, totalsOf } from '../ledger.ts';
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

/** No rate limit: the counting runs measure calls, not time under a quota (see quota.ts). */
const unlimited = { SWR_MAX_RPS: '10000', SWR_BURST: '10000' };
const unlimitedEnv = { accessChanges: unlimited, offboarding: unlimited };

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
  /** HTTP requests as the simulator counted them (retries and the client's own conflict reads included). */
  counts: CallCounts;
  /** Our calls as the pipeline made them, by stage and kind. */
  ledger: LedgerCounts;
  totals: LedgerTotals;
  ms: number;
  batches: Record<QueueName, number[]>;
  apiRetries: number;
  rateLimitWaits: number;
  /** 429 answers of the simulator during the run (a lower bound when its 10,000-entry log wrapped). */
  throttled: number;
  redeliveries: number;
  lost: number;
  warmupWrites: number;
  floorOverall: FloorCount;
  wrongPermissions: number;
  wrongSample: string[];
}

interface OursSettings {
  /** Switched on after the warm-up. */
  faults?: Parameters<Simulator['setFaults']>[0];
  shapes?: Record<QueueName, QueueShape>;
  env?: Partial<Record<QueueName, Record<string, string>>>;
}

/** Our pipeline over the workload in a fresh simulator (the warm-up is neither limited nor counted). */
const runOurs = async (workload: Workload, settings: OursSettings = {}): Promise<OursRun> => {
  const sim = await startSimulator({ seed: parseSeed(workload.world.seed) });
  try {
    // One store for the warm-up and the run: the warm-up is what tells it the initial teams.
    const store = createMemoryStore();
    const beforeWarmup = sim.requestCounts();
    await drivePipeline(workload.warmup, sim, workload.policy, { store, env: unlimitedEnv });
    const warmupWrites = classifyCounts(countsSince(beforeWarmup, sim.requestCounts())).writes;
    if (settings.faults !== undefined) sim.setFaults(settings.faults);
    const start = sim.permissions();
    const before = sim.requestCounts();
    const startedAt = Date.now();
    const report = await drivePipeline(workload.events, sim, workload.policy, {
      store,
      env: settings.env ?? unlimitedEnv,
      ...(settings.shapes === undefined ? {} : { shapes: settings.shapes }),
    });
    const counts = classifyCounts(countsSince(before, sim.requestCounts()));
    const final = sim.permissions();
    const wrong = permissionDifferences(final, workload.expected);
    return {
      counts,
      ledger: report.ledger,
      totals: totalsOf(report.ledger),
      ms: report.ms,
      batches: report.batches,
      apiRetries: report.apiRetries,
      rateLimitWaits: report.rateLimitWaits,
      throttled: sim.requestLog().filter((entry) => entry.status === 429 && entry.at >= startedAt).length,
      redeliveries: report.redeliveries,
      lost: report.lost,
      warmupWrites,
      floorOverall: floorOf(start, final),
      wrongPermissions: wrong.count,
      wrongSample: wrong.sample,
    };
  } finally {
    await sim.close();
  }
};

interface NaiveRun {
  counts: CallCounts;
  ms: number;
  failedEvents: number;
  wrongPermissions: number;
  wrongSample: string[];
}

/** The naive baseline over `events` (default: all) in a fresh simulator; `expected` only for all. */
const runNaive = async (
  workload: Workload,
  options: BenchOptions,
  settings: { env?: Record<string, string>; events?: readonly BenchEvent[]; quota?: number } = {},
): Promise<NaiveRun> => {
  const sim = await startSimulator({ seed: parseSeed(workload.world.seed) });
  const services = servicesFor(sim, settings.env ?? unlimited);
  try {
    if (settings.quota !== undefined)
      sim.setFaults({ quota: { ratePerSecond: settings.quota, burst: settings.quota } });
    const naive = createNaiveSync({
      swr: services.swr,
      policy: workload.policy,
      concurrency: options.sizes.concurrency,
      initialTeams: workload.world.initialTeams,
    });
    const before = sim.requestCounts();
    const run = await driveNaive(settings.events ?? workload.events, naive.apply);
    const counts = classifyCounts(countsSince(before, sim.requestCounts()));
    const wrong = permissionDifferences(sim.permissions(), workload.expected);
    return {
      counts,
      ms: run.ms,
      failedEvents: run.failed,
      wrongPermissions: settings.events === undefined ? wrong.count : Number.NaN,
      wrongSample: settings.events === undefined ? wrong.sample : [],
    };
  } finally {
    await services.close();
    await sim.close();
  }
};

const perEvent = (value: number, events: number): number => value / events;

const fixed = (value: number): string => value.toFixed(3);

/** Where our calls go, per event: the note of the calls row. */
const breakdownOf = (ours: OursRun, n: number): string => {
  const { apply, sweep } = ours.ledger;
  const applyCalls = apply.read + apply.readBack + apply.post + apply.patch + apply.delete + apply.list;
  const sweepCalls = sweep.read + sweep.readBack + sweep.post + sweep.patch + sweep.delete + sweep.list;
  const own = ours.counts.swr - ours.totals.calls;
  return (
    `apply ${fixed(applyCalls / n)} (reads ${fixed(apply.read / n)}, read-backs ${fixed(apply.readBack / n)}, ` +
    `writes ${fixed((apply.post + apply.patch + apply.delete) / n)}); sweep ${fixed(sweepCalls / n)} ` +
    `(reads ${fixed(sweep.read / n)}, read-backs ${fixed(sweep.readBack / n)}, writes ` +
    `${fixed((sweep.post + sweep.patch + sweep.delete) / n)}, listings ${fixed(sweep.list / n)}); ` +
    `client's own conflict reads and rewrites ${fixed(own / n)}`
  );
};

const describeShape = (shapes: Record<QueueName, QueueShape>): string =>
  `access-changes batches ≤ ${shapes.accessChanges.batchSize} × ${shapes.accessChanges.instances} instances, ` +
  `offboarding batches ≤ ${shapes.offboarding.batchSize} × ${shapes.offboarding.instances}`;

/**
 * @example const { rows } = await runCallsScenario(options);
 */
const runCallsScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const workload = workloadOf(options, options.sizes.events);
  try {
    const n = workload.events.length;
    const deployed = deployedShapes();
    progress(`calls: ours over ${n} events (${describeShape(deployed)})`);
    const ours = await runOurs(workload);
    const oneInstance: Record<QueueName, QueueShape> = {
      ...deployed,
      accessChanges: { ...deployed.accessChanges, instances: 1 },
    };
    progress(`calls: ours over ${n} events, diagnosis: ${describeShape(oneInstance)}`);
    const single = await runOurs(workload, { shapes: oneInstance });
    progress(`calls: naive over ${n} events`);
    const naive = await runNaive(workload, options);
    const naiveLabel = 'naive DELETE+POST per user and target';
    const rows: ResultRow[] = [
      {
        section: 'calls',
        metric: 'SWR calls per event (all: reads, read-backs, writes, listings)',
        unit: '',
        ours: perEvent(ours.counts.swr, n),
        baseline: perEvent(naive.counts.swr, n),
        baselineLabel: naiveLabel,
        note: `target ≤ 1.0; ${breakdownOf(ours, n)}`,
      },
      {
        section: 'calls',
        metric: 'SWR writes per event vs the overall floor',
        unit: '',
        ours: perEvent(ours.counts.writes, n),
        baseline: perEvent(ours.floorOverall.total, n),
        baselineLabel: 'overall floor (initial vs final state, one call per target and action)',
        note: 'target ≤ 2× the floor',
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
        metric: 'SWR reads per event (GETs and listings)',
        unit: '',
        ours: perEvent(ours.counts.reads + ours.counts.lists, n),
        baseline: perEvent(naive.counts.reads + naive.counts.lists, n),
        baselineLabel: naiveLabel,
        note: 'naive never reads',
      },
      {
        section: 'calls',
        metric: 'SWR calls per event, 2 access-changes instances (deployed) vs 1',
        unit: '',
        ours: perEvent(ours.counts.swr, n),
        baseline: perEvent(single.counts.swr, n),
        baselineLabel: 'the same pipeline and workload with one access-changes instance (diagnosis)',
        note: `writes ${fixed(perEvent(single.counts.writes, n))}/event with one instance`,
      },
      {
        section: 'calls',
        metric: 'time for the workload, no latency, no rate limit',
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
        shape: deployed,
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
          'distinct (target, action) pairs between the initial and the final permission state: what an oracle seeing the whole reorganisation at once would write',
        ours,
        oneAccessChangesInstance: single,
        naive,
      },
    };
  } finally {
    workload.cleanup();
  }
};

/**
 * 6. The same workload under 20 % injected 5xx and 5 % 429, against the same workload without
 * faults (both ours, deployed shape, fresh simulators, production retry policy, no rate limit).
 */
const runRetryScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const workload = workloadOf(options, options.sizes.retryEvents);
  try {
    const n = workload.events.length;
    progress(`retry: ours over ${n} events, no faults`);
    const clean = await runOurs(workload);
    progress(`retry: ours over ${n} events, 20% 5xx + 5% 429`);
    const faulty = await runOurs(workload, {
      faults: { error5xxRate: 0.2, throttle429Rate: 0.05, seed: options.seed },
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

export type { NaiveRun, OursRun, Workload };
export { runCallsScenario, runNaive, runOurs, runRetryScenario, unlimited, workloadOf };

/**
 * 2. Time to apply the reorganisation under an account quota: the simulator's quota mode (a token
 * bucket of `--quota-rps` requests per second over every SWR call, answering 429 APIGW.0308
 * past it), our pipeline driven in the deployed shape (`bench/drive.ts`; messages that fail come
 * back at once, where SQS would wait for the visibility timeout), and the naive baseline.
 *
 * The headline is ours as deployed by default: every instance with the default ceiling
 * (`SWR_MAX_RPS` 20, burst 10) and the adaptive rate, which shares the quota by backing off on
 * 429s. Two diagnosis rows in the same run: the old rule of the README (the quota split statically
 * over every instance that may run at once: each function's maximumConcurrency plus one
 * reconcile), and the default ceiling without adaptation (`SWR_ADAPTIVE_RATE=false`: every
 * instance at 20 req/s, the gateway's 429 and the client's back-off sharing the quota out).
 *
 * The naive baseline at ~25 calls per event would take about 40 minutes: it is timed on the first
 * `--quota-naive-events` events under the same quota (one process, its client limited to the
 * whole quota), and that time is scaled by its call count over every event (counted without the
 * quota in the same run): estimate = prefix time × all calls ÷ prefix calls.
 */
import queuesConfig from '../../config/queues.json' with { type: 'json' };
import type { BenchOptions } from '../args.ts';
import { deployedShapes } from '../drive.ts';
import type { ResultRow } from '../table.ts';
import { type OursRun, runNaive, runOurs, workloadOf } from './calls.ts';
import { progress, type ScenarioResult } from './common.ts';

/** Every function instance that may call SWR at once: each queue function's maximumConcurrency, plus one reconcile. */
const instancesAtOnce = (): number =>
  Object.values(queuesConfig.queues).reduce((sum, queue) => sum + queue.maximumConcurrency, 0) + 1;

/** Per-instance rate as the README's rule gives it (at least 1, the configuration's minimum). */
const perInstanceRate = (quota: number): number => Math.max(1, Math.floor(quota / instancesAtOnce()));

/** The same environment for both queue functions. */
const everyFunction = (env: Record<string, string>) => ({ accessChanges: env, offboarding: env });

/** The old rule: a static share of the quota per instance, fixed (the code had no adaptation then). */
const staticSplitEnv = (rate: number) =>
  everyFunction({ SWR_MAX_RPS: String(rate), SWR_BURST: String(rate), SWR_ADAPTIVE_RATE: 'false' });

const seconds = (ms: number): number => ms / 1000;

/** The simulator's request log keeps its last 10,000 entries: past that, 429s counted in it are a lower bound. */
const simulatorLogCapacity = 10_000;

/**
 * 429s of a run: as counted in the simulator's log, or, when the log wrapped, at least the
 * requests beyond what the account's bucket can have let through (a full burst, then the rate).
 */
const throttledOf = (run: OursRun, quota: number): { count: number; exact: boolean } => {
  if (run.counts.swr <= simulatorLogCapacity) return { count: run.throttled, exact: true };
  const mostLetThrough = quota * (1 + seconds(run.ms));
  return { count: Math.max(run.throttled, Math.ceil(run.counts.swr - mostLetThrough)), exact: false };
};

/**
 * What a run did, for the report: requests the gateway let through, and per access-changes batch
 * (deliveries included) how many reads and writes the pipeline made: a delivery that re-reads
 * everything and writes nothing made no progress.
 */
const summaryOf = (run: OursRun, quota: number) => {
  const deliveries = run.batches.accessChanges.length;
  return {
    ms: run.ms,
    swrRequests: run.counts.swr,
    throttledInLog: run.throttled,
    throttled: throttledOf(run, quota),
    acceptedRequests: run.counts.swr - throttledOf(run, quota).count,
    pipelineCalls: run.totals.calls,
    reads: run.totals.reads,
    readBacks: run.totals.readBacks,
    writes: run.totals.writes,
    cutAtDeadline: run.ledger.apply.cut + run.ledger.sweep.cut,
    lost: run.lost,
    redeliveries: run.redeliveries,
    wrongPermissions: run.wrongPermissions,
    apiRetries: run.apiRetries,
    rateLimitWaits: run.rateLimitWaits,
    batches: run.batches,
    accessChangesDeliveries: deliveries,
    readsPerAccessChangesDelivery: deliveries === 0 ? 0 : run.ledger.apply.read / deliveries,
  };
};

/**
 * @example const { rows } = await runQuotaScenario(options);
 */
const runQuotaScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const quota = options.sizes.quotaRps;
  const workload = workloadOf(options, options.sizes.events);
  const faults = { quota: { ratePerSecond: quota, burst: quota } };
  try {
    const n = workload.events.length;
    const throttledText = (run: OursRun): string => {
      const { count, exact } = throttledOf(run, quota);
      return exact
        ? `${count} answered 429`
        : `at least ${count} answered 429 (the simulator's log wrapped: ${run.throttled} in it)`;
    };
    const rate = perInstanceRate(quota);
    const instances = instancesAtOnce();
    progress(
      `quota: ours as deployed by default over ${n} events, ${quota} req/s account quota (adaptive rate)`,
    );
    const ours = await runOurs(workload, { faults, env: everyFunction({}) });
    progress(`quota: the old rule, ${rate} req/s fixed per instance (diagnosis)`);
    const split = await runOurs(workload, { faults, env: staticSplitEnv(rate) });
    progress(`quota: the default ceiling without adaptation, SWR_ADAPTIVE_RATE=false (diagnosis)`);
    const fixed = await runOurs(workload, { faults, env: everyFunction({ SWR_ADAPTIVE_RATE: 'false' }) });
    progress(`quota: naive over ${n} events without the quota (its call count)`);
    const naiveAll = await runNaive(workload, options);
    const prefix = workload.events.slice(0, options.sizes.quotaNaiveEvents);
    progress(`quota: naive over the first ${prefix.length} events under the quota`);
    const naivePrefix = await runNaive(workload, options, {
      events: prefix,
      env: { SWR_MAX_RPS: String(quota), SWR_BURST: String(quota) },
      quota,
    });
    const naiveMs = (naivePrefix.ms * naiveAll.counts.swr) / naivePrefix.counts.swr;
    const naiveLabel =
      `naive, ${naivePrefix.counts.swr} calls of the first ${prefix.length} events timed under the quota ` +
      `(${seconds(naivePrefix.ms).toFixed(1)} s), scaled to its ${naiveAll.counts.swr} calls for all ${n}`;
    const outcome = (run: OursRun) =>
      `${run.lost > 0 ? `NOT APPLIED: the time is until every message was applied or dead-lettered; ` : ''}` +
      `${run.lost} message(s) dead-lettered, ${run.wrongPermissions} wrong (target, user) levels at the end, ` +
      `${run.counts.swr} SWR requests for ${run.totals.calls} calls of the pipeline, ${throttledText(run)}, ` +
      `${run.redeliveries} redeliveries`;
    // The least time the quota allows for the requests the gateway let through: what dominates when it is near.
    const floorOf = (run: OursRun) => (run.counts.swr - throttledOf(run, quota).count) / quota;
    const speedup = (run: OursRun) => (run.ms > 0 ? naiveMs / run.ms : 0);
    const rows: ResultRow[] = [
      {
        section: 'quota',
        metric: `time to apply the reorganisation under a ${quota} req/s account quota`,
        unit: 's',
        ours: seconds(ours.ms),
        baseline: seconds(naiveMs),
        baselineLabel: naiveLabel,
        note:
          `target ≥ 20× faster (${speedup(ours).toFixed(1)}×); ours as deployed by default: every instance ` +
          `SWR_MAX_RPS=20 (ceiling) and SWR_BURST=10, adaptive rate (cut ×0.7 on a 429, back up 1 req/s per s); ` +
          `${outcome(ours)}; the requests let through need ≥ ${floorOf(ours).toFixed(0)} s at ${quota} req/s`,
      },
      {
        section: 'quota',
        metric: `time to apply it, the old rule: the quota split statically, ${rate} req/s fixed in each of ${instances} instances`,
        unit: 's',
        ours: seconds(split.ms),
        baseline: seconds(naiveMs),
        baselineLabel: 'the same naive estimate (diagnosis: the README rule this work removed)',
        note: `SWR_MAX_RPS=${rate}, SWR_BURST=${rate}, SWR_ADAPTIVE_RATE=false (both queue functions' maximumConcurrency + 1 reconcile); ${outcome(split)}`,
      },
      {
        section: 'quota',
        metric: `time to apply it, every instance at a fixed 20 req/s (SWR_ADAPTIVE_RATE=false)`,
        unit: 's',
        ours: seconds(fixed.ms),
        baseline: seconds(naiveMs),
        baselineLabel: 'the same naive estimate (diagnosis: what the adaptive rate changes)',
        note: outcome(fixed),
      },
    ];
    return {
      rows,
      details: {
        events: n,
        quota: faults.quota,
        perInstanceRate: rate,
        instancesAtOnce: instances,
        shape: deployedShapes(),
        ours: summaryOf(ours, quota),
        oursDetail: ours,
        staticSplit: summaryOf(split, quota),
        fixedRate: summaryOf(fixed, quota),
        naive: {
          estimateMs: naiveMs,
          allEvents: { calls: naiveAll.counts.swr, ms: naiveAll.ms },
          prefix: {
            events: prefix.length,
            calls: naivePrefix.counts.swr,
            ms: naivePrefix.ms,
            failedEvents: naivePrefix.failedEvents,
          },
        },
      },
    };
  } finally {
    workload.cleanup();
  }
};

export { instancesAtOnce, perInstanceRate, runQuotaScenario };

/**
 * 2. Time to apply the reorganisation under an account quota: the simulator's quota mode (a token
 * bucket of `--quota-rps` requests per second over every SWR call, answering 429 APIGW.0308
 * past it), our pipeline driven in the deployed shape (`bench/drive.ts`; messages that fail come
 * back at once, where SQS would wait for the visibility timeout), and the naive baseline.
 *
 * Ours is configured as the README tells an operator to: every instance that may run at once
 * (each function's maximumConcurrency, plus one reconcile) gets the same `SWR_MAX_RPS` and
 * `SWR_BURST`, their sum at or under the quota. A second run of ours lets every instance use the
 * whole quota (the gateway's 429 and the client's back-off share it out): what the same calls
 * cost when no static split wastes the quota (diagnosis).
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

const limitEnv = (rate: number) => {
  const env = { SWR_MAX_RPS: String(rate), SWR_BURST: String(rate) };
  return { accessChanges: env, offboarding: env };
};

const seconds = (ms: number): number => ms / 1000;

const summaryOf = (run: OursRun) => ({
  ms: run.ms,
  swrRequests: run.counts.swr,
  throttled: run.throttled,
  lost: run.lost,
  redeliveries: run.redeliveries,
  wrongPermissions: run.wrongPermissions,
  batches: run.batches,
});

/**
 * @example const { rows } = await runQuotaScenario(options);
 */
const runQuotaScenario = async (options: BenchOptions): Promise<ScenarioResult> => {
  const quota = options.sizes.quotaRps;
  const workload = workloadOf(options, options.sizes.events);
  const faults = { quota: { ratePerSecond: quota, burst: quota } };
  try {
    const n = workload.events.length;
    const rate = perInstanceRate(quota);
    const instances = instancesAtOnce();
    progress(`quota: ours over ${n} events, ${quota} req/s account quota, ${rate} req/s per instance`);
    const ours = await runOurs(workload, { faults, env: limitEnv(rate) });
    progress(`quota: ours over ${n} events, every instance allowed the whole quota (diagnosis)`);
    const shared = await runOurs(workload, { faults, env: limitEnv(quota) });
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
      `${run.counts.swr} SWR requests for ${run.totals.calls} calls of the pipeline, ${run.throttled} answered 429`;
    const rows: ResultRow[] = [
      {
        section: 'quota',
        metric: `time to apply the reorganisation under a ${quota} req/s account quota`,
        unit: 's',
        ours: seconds(ours.ms),
        baseline: seconds(naiveMs),
        baselineLabel: naiveLabel,
        note: `target ≥ 20× faster; ours: SWR_MAX_RPS=${rate} and SWR_BURST=${rate} in each of ${instances} instances (both queue functions' maximumConcurrency + 1 reconcile); ${outcome(ours)}`,
      },
      {
        section: 'quota',
        metric: `time to apply it, every instance allowed the whole ${quota} req/s`,
        unit: 's',
        ours: seconds(shared.ms),
        baseline: seconds(naiveMs),
        baselineLabel: 'the same naive estimate (diagnosis: what a split that wastes nothing would allow)',
        note: outcome(shared),
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
        ours: summaryOf(ours),
        oursDetail: ours,
        wholeQuotaPerInstance: summaryOf(shared),
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

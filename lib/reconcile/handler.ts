/**
 * The Lambda side of reconcile: an EventBridge schedule (or a manual invocation) in, a short
 * summary out. The schedule's event carries nothing reconcile needs; a manual invocation may
 * ask for a dry run or, after a person checked a blocked run, `{ "allowMassRevoke": true }`.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { ErrorCodes, SyncError } from '../errors.ts';
import { flushMetrics } from '../middleware.ts';
import * as z from '../zod.ts';
import { recordReconcileCrash, recordReconcileMetrics } from './metrics.ts';
import { runReconcile } from './reconcile.ts';
import { reconcileSummary } from './report.ts';
import type { ReconcileRuntime } from './runtime.ts';

/** Overrides a manual invocation may carry; anything else in the event is ignored. */
const overridesSchema = z.looseObject({
  source: z.optional(z.unknown()),
  dryRun: z.optional(z.boolean()),
  allowMassRevoke: z.optional(z.boolean()),
});

interface Overrides {
  dryRun: boolean;
  allowMassRevoke: boolean;
}

/** A scheduled event never overrides anything; a manual one can only add safety or the override. */
const overridesOf = (event: unknown): Overrides => {
  const parsed = overridesSchema.safeParse(event);
  if (!parsed.success || parsed.data.source === 'aws.events')
    return { dryRun: false, allowMassRevoke: false };
  return { dryRun: parsed.data.dryRun === true, allowMassRevoke: parsed.data.allowMassRevoke === true };
};

type ReconcileSummary = ReturnType<typeof reconcileSummary>;

/**
 * Runs one reconcile within the invocation's time. A run that cannot start (configuration,
 * store unreadable) is logged and thrown, so Lambda counts the invocation as failed.
 *
 * @example const summary = await handleReconcileEvent({}, context, runtime);
 */
const handleReconcileEvent = async (
  event: unknown,
  context: Context,
  runtime: ReconcileRuntime,
): Promise<ReconcileSummary> => {
  try {
    const { deps, settings, safetyMarginMs } = await runtime.ready();
    const overrides = overridesOf(event);
    const deadline = Date.now() + context.getRemainingTimeInMillis() - safetyMarginMs;
    const report = await runReconcile(deps, {
      ...settings,
      dryRun: settings.dryRun || overrides.dryRun,
      allowMassRevoke: settings.allowMassRevoke || overrides.allowMassRevoke,
      deadline,
    });
    recordReconcileMetrics(runtime.metrics, report);
    return reconcileSummary(report);
  } catch (error) {
    recordReconcileCrash(runtime.metrics);
    runtime.log.error('reconcile could not run', {
      errorCode: error instanceof SyncError ? error.code : ErrorCodes.crash,
      reason: error instanceof SyncError ? error.message : `unexpected ${(error as Error)?.name}`,
    });
    throw error;
  }
};

/**
 * The middy handler of the reconcile function.
 *
 * @example export const handler = createReconcileHandler(createReconcileRuntime({ functionName: 'reconcile' }));
 */
const createReconcileHandler = (runtime: ReconcileRuntime) =>
  middy<unknown, ReconcileSummary, Error, Context>({ timeoutEarlyInMillis: 0 })
    .use(flushMetrics({ metrics: runtime.metrics }))
    .handler((event, context) => handleReconcileEvent(event, context, runtime));

export type { Overrides, ReconcileSummary };
export { createReconcileHandler, handleReconcileEvent, overridesOf };

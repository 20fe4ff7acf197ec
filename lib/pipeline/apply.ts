/**
 * Stage 4: the batch's users converged on their known targets (the targets of every team the
 * store has for them): joins granted, leaves revoked, an offboarding's known grants revoked in
 * the first seconds. Everything else an offboarding needs is the sweep's (stage 5).
 */

import { auditRecordsOf, countCalls } from '../converge/audit.ts';
import { converge } from '../converge/converge.ts';
import type { CallResult } from '../core/executor.ts';
import { type BatchUser, knownTargets } from '../core/planner.ts';
import { targetKey } from '../domain.ts';
import { SyncError } from '../errors.ts';
import { type AuditRecord, type Log, MetricNames } from '../observability.ts';
import type { TargetReads } from '../read-targets.ts';
import type { BatchState } from './batch-state.ts';
import type { RecordedBatch } from './record.ts';
import type { PipelineDeps, PipelineSettings } from './types.ts';

interface AppliedBatch {
  changes: AuditRecord[];
  /** The latest read of every target looked at (the sweep reuses them). */
  reads: TargetReads;
}

/** A failed call is logged once with the events whose changes it blocked. */
const logFailedCalls = (calls: readonly CallResult[], log: Log): void => {
  for (const result of calls) {
    if (result.outcome !== 'failed' || result.error === undefined) continue;
    const entry = {
      target: targetKey(result.call.target),
      action: result.call.action,
      errorCode: result.error.code,
      reason: result.error.message,
      retryable: result.error.retryable,
      users: result.call.changes.map((change) => change.userId),
      eventIds: [...new Set(result.call.changes.flatMap((change) => change.eventIds))].sort(),
    };
    if (result.error.retryable) log.warn('SWR call failed; its events will be retried', entry);
    else log.error('SWR call failed for good; its events are dead-lettered', entry);
  }
};

/** SWR's code for a user name it refuses (4001066): also what it answers for a name IAM changed. */
const refusedUserName = 'SVCSTG.SWR.4001066';

/**
 * A grant SWR refused for the user's name alone may be a rename in IAM that the look-up cache has
 * not seen yet: the cached identity is forgotten and the message retried, so the next delivery
 * asks IAM again (on the queue's last receive it is dead-lettered with the reason, as any retry).
 */
const staleNameRetried = (
  messageId: string,
  error: SyncError,
  calls: readonly CallResult[],
  deps: PipelineDeps,
): SyncError => {
  if (error.code !== refusedUserName) return error;
  const refused = calls.find(
    (result) =>
      result.outcome === 'failed' &&
      result.error === error &&
      result.call.changes.length === 1 &&
      result.call.messageIds.includes(messageId),
  );
  const userId = refused?.call.changes[0]?.userId;
  if (userId === undefined || deps.directory.forget === undefined) return error;
  deps.directory.forget(userId);
  return new SyncError(
    `${error.message} (the name may have changed in IAM: looked up again on the next delivery)`,
    {
      code: error.code,
      retryable: true,
      ...(error.target === undefined ? {} : { target: error.target }),
      cause: error,
    },
  );
};

const scopeOf = (users: readonly BatchUser[], deps: PipelineDeps): Set<string> => {
  const scope = new Set<string>();
  for (const user of users) for (const key of knownTargets(user, deps.policy).keys()) scope.add(key);
  return scope;
};

/**
 * @example const { changes, reads } = await applyStage(batch, recorded, deps, settings, deadline);
 */
const applyStage = async (
  batch: BatchState,
  recorded: RecordedBatch,
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<AppliedBatch> => {
  const users = recorded.users;
  const result = await converge(
    users,
    { swr: deps.swr, store: deps.store, policy: deps.policy, now: deps.now },
    {
      concurrency: settings.concurrency,
      deadline,
      dryRun: settings.dryRun,
      scope: scopeOf(users, deps),
      ...(settings.maxReplans === undefined ? {} : { maxReplans: settings.maxReplans }),
    },
  );
  for (const [messageId, error] of result.failures)
    batch.fail(messageId, staleNameRetried(messageId, error, result.calls, deps));
  if (result.replanned > 0) {
    deps.metrics.count(MetricNames.replans, result.replanned);
    deps.log.info('store moved during the batch; planned again', { users: result.replanned });
  }
  return { changes: accountFor(result.calls, recorded, deps, settings), reads: result.reads };
};

/**
 * What the calls of a stage leave behind: a log record for each failed call (with the events it
 * blocked), the metrics, and the audit records of what was done (or, in a dry run, planned).
 */
const accountFor = (
  calls: readonly CallResult[],
  recorded: RecordedBatch,
  deps: PipelineDeps,
  settings: PipelineSettings,
): AuditRecord[] => {
  logFailedCalls(calls, deps.log);
  countCalls(calls, deps.metrics);
  return auditRecordsOf(calls, {
    actor: settings.actor,
    dryRun: settings.dryRun,
    at: deps.now(),
    sources: recorded.sources,
  });
};

export type { AppliedBatch };
export { accountFor, applyStage };

/**
 * Stage 4: the batch's users converged on their known targets (the targets of every team the
 * store has for them): joins granted, leaves revoked, an offboarding's known grants revoked in
 * the first seconds. Everything else an offboarding needs is the sweep's (stage 5).
 *
 * With a converge lease (access-changes), instances record their facts in parallel but converge
 * one at a time: the holder re-reads its users' records first, so it converges them to every fact
 * recorded so far (the other instance's too), and the next holder finds those targets right.
 */

import { auditRecordsOf, countCalls } from '../converge/audit.ts';
import { converge } from '../converge/converge.ts';
import { waitForLease } from '../converge/lease.ts';
import { announcedUsers, refreshUsers } from '../converge/refresh.ts';
import type { CallResult } from '../core/executor.ts';
import { type BatchUser, convergeTargets, touchedTargets } from '../core/planner.ts';
import type { LeasePort, TargetAccess } from '../domain.ts';
import { targetKey } from '../domain.ts';
import { SyncError } from '../errors.ts';
import { type AuditRecord, type Log, MetricNames } from '../observability.ts';
import { readTargets, type TargetReads } from '../read-targets.ts';
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
  for (const user of users) for (const key of convergeTargets(user, deps.policy).keys()) scope.add(key);
  return scope;
};

/** The one converge lease of the access-changes pipeline, in the membership table. */
const convergeLeaseName = 'converge:access-changes';

/**
 * How long past the holder's deadline its lease lives if never released: the release itself may
 * take until the answer grace ends (2 s), plus a second for clocks that differ between instances.
 */
const leaseMarginMs = 3_000;

const defaultAnswerGraceMs = 2_000;

const failMessages = (batch: BatchState, users: readonly BatchUser[], error: SyncError): void => {
  for (const user of users) for (const messageId of user.messageIds) batch.fail(messageId, error);
};

const convergeUsers = async (
  batch: BatchState,
  recorded: RecordedBatch,
  users: readonly BatchUser[],
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
  initial?: TargetReads,
): Promise<AppliedBatch> => {
  const result = await converge(
    users,
    { swr: deps.swr, store: deps.store, policy: deps.policy, now: deps.now },
    {
      concurrency: settings.concurrency,
      deadline,
      dryRun: settings.dryRun,
      scope: scopeOf(users, deps),
      ...(initial === undefined ? {} : { initial, rereadInitialFailures: false }),
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
 * Holding the lease: the targets read first, then the users re-read from the store, then
 * converged from those reads (a target a newer record adds is read by the converge). Reading SWR
 * before the store gives an instance still recording in parallel that much more time to finish:
 * whatever it recorded by then is converged here, once, and not again by it.
 */
const convergeNewest = async (
  lease: LeasePort,
  batch: BatchState,
  recorded: RecordedBatch,
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<AppliedBatch> => {
  const scope = scopeOf(recorded.users, deps);
  const targets = touchedTargets(recorded.users, deps.policy).filter((target) =>
    scope.has(targetKey(target)),
  );
  const early = await readTargets(targets, deps.swr, settings.concurrency, deadline);
  const refreshed = await refreshUsers(recorded.users, deps.store, deps.policy, {
    concurrency: settings.concurrency,
    deadline,
  });
  for (const user of recorded.users) {
    const error = refreshed.unread.get(user.userId);
    if (error !== undefined) failMessages(batch, [user], error);
  }
  if (refreshed.moved > 0)
    deps.log.info('records moved while the batch waited for the converge lease; converged to the newest', {
      users: refreshed.moved,
    });
  const others = await othersAnnounced(lease, recorded, deps, settings, deadline);
  const users = [...refreshed.users, ...others];
  const applied = await convergeUsers(batch, recorded, users, deps, settings, deadline, early);
  await lease
    .forget(
      convergeLeaseName,
      users.map((user) => user.userId),
      { deadline },
    )
    .catch((error: unknown) =>
      deps.log.warn('converged users not forgotten on the lease', describeError(error)),
    );
  return applied;
};

const describeError = (error: unknown) => ({
  reason: error instanceof Error ? error.message : String(error),
});

/**
 * The users batches waiting for the lease recorded: converged here with this batch's own, so that
 * their targets' calls carry them too and their own converge then finds them right.
 */
const othersAnnounced = async (
  lease: LeasePort,
  recorded: RecordedBatch,
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<BatchUser[]> => {
  let ids: string[];
  try {
    ids = await lease.announced(convergeLeaseName, { deadline });
  } catch (error) {
    deps.log.warn('users announced on the lease not read; converging this batch alone', describeError(error));
    return [];
  }
  const own = new Set(recorded.users.map((user) => user.userId));
  const others = await announcedUsers(
    ids.filter((id) => !own.has(id)),
    deps.store,
    { concurrency: settings.concurrency, deadline },
  );
  if (others.length > 0) deps.log.info('converging users other batches recorded', { users: others.length });
  return others;
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
  const lease = deps.convergeLease;
  // A dry run writes nothing, so it has nothing to coordinate.
  if (lease === undefined || settings.dryRun || recorded.users.length === 0)
    return convergeUsers(batch, recorded, recorded.users, deps, settings, deadline);
  // Whoever holds the lease meanwhile converges these users too (best effort).
  await lease
    .announce(
      convergeLeaseName,
      recorded.users.map((user) => user.userId),
      { deadline },
    )
    .catch((error: unknown) => deps.log.warn('batch users not announced on the lease', describeError(error)));
  const wait = await waitForLease(lease, convergeLeaseName, settings.actor, {
    deadline,
    expiresAt: deadline + leaseMarginMs,
  });
  deps.metrics.milliseconds(MetricNames.convergeLeaseWait, wait.waitedMs);
  if (!wait.acquired) {
    deps.log.warn('converge lease not acquired in time; the batch is retried', {
      waitedMs: wait.waitedMs,
      attempts: wait.attempts,
      errorCode: wait.error.code,
      reason: wait.error.message,
    });
    failMessages(batch, recorded.users, wait.error);
    return { changes: [], reads: { actual: new Map<string, TargetAccess>(), readErrors: new Map() } };
  }
  try {
    return await convergeNewest(lease, batch, recorded, deps, settings, deadline);
  } finally {
    const releaseBy = deadline + (settings.answerGraceMs ?? defaultAnswerGraceMs);
    await lease
      .release(convergeLeaseName, wait.owner, { deadline: releaseBy })
      .catch((error: unknown) =>
        deps.log.warn('converge lease not released; it expires on its own', describeError(error)),
      );
  }
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
export { accountFor, applyStage, convergeLeaseName, leaseMarginMs };

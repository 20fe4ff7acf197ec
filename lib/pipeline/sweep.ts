/**
 * Stage 5: users who left the company lose everything else: every policy target and every
 * repository of the managed namespaces, page by page, resumable across deliveries (see
 * `lib/offboarding/sweep.ts`). Where the deps have a sweep queue (`sweepRequests`: the queue
 * handlers), each leaver's sweep is requested there and done later, many leavers in one pass
 * (`processSweepRequests`); the message is settled once the request is sent. Without one (the
 * CLI), the sweep runs here. A user whose sweep is not finished, or whose request could not be
 * sent, keeps their messages unsettled.
 */

import { isTombstoned } from '../core/desired.ts';
import type { BatchUser } from '../core/planner.ts';
import type { AuditRecord } from '../observability.ts';
import { createMemorySweepProgress } from '../offboarding/progress.ts';
import { type OffboardingProof, sweepOffboarded } from '../offboarding/sweep.ts';
import type { TargetReads } from '../read-targets.ts';
import { accountFor } from './apply.ts';
import type { BatchState } from './batch-state.ts';
import type { RecordedBatch } from './record.ts';
import type { PipelineDeps, PipelineSettings } from './types.ts';

interface SweptBatch {
  changes: AuditRecord[];
  proofs: OffboardingProof[];
}

/**
 * Sweeps `leaving` now (every user's tombstone in `after`); reads already made in this delivery
 * (`reads`) are not made again. Shared by the inline path and the sweep queue's handler.
 *
 * @example const { changes, proofs } = await sweepLeavers(batch, users, recorded, undefined, deps, settings, deadline);
 */
const sweepLeavers = async (
  batch: BatchState,
  leaving: readonly BatchUser[],
  recorded: RecordedBatch,
  reads: TargetReads | undefined,
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<SweptBatch> => {
  if (leaving.length === 0) return { changes: [], proofs: [] };
  const swept = await sweepOffboarded(
    leaving,
    {
      swr: deps.swr,
      store: deps.store,
      policy: deps.policy,
      now: deps.now,
      progress: deps.sweepProgress ?? createMemorySweepProgress(),
    },
    {
      concurrency: settings.sweepConcurrency ?? settings.concurrency,
      deadline,
      dryRun: settings.dryRun,
      ...(settings.sweepPageSize === undefined ? {} : { pageSize: settings.sweepPageSize }),
    },
    reads,
  );
  for (const user of leaving) {
    const outcome = swept.users.get(user.userId);
    if (outcome?.done === false && outcome.error !== undefined)
      for (const messageId of user.messageIds) batch.fail(messageId, outcome.error);
  }
  for (const proof of swept.proofs) deps.log.info('offboarding proven', { ...proof, proof: true });
  return { changes: accountFor(swept.calls, recorded, deps, settings), proofs: swept.proofs };
};

/** Requests each leaver's sweep on the sweep queue; a request not sent fails its user's messages. */
const requestSweeps = async (
  batch: BatchState,
  leaving: readonly BatchUser[],
  deps: PipelineDeps & Required<Pick<PipelineDeps, 'sweepRequests'>>,
  deadline: number,
): Promise<void> => {
  const requests = leaving.map((user) => ({
    userId: user.userId,
    offboardedAt: user.after.offboardedAt as string,
  }));
  const { failed } = await deps.sweepRequests.send(requests, { deadline });
  const failures = new Map(failed.map((entry) => [entry.userId, entry.error]));
  for (const user of leaving) {
    const error = failures.get(user.userId);
    if (error === undefined) continue;
    for (const messageId of user.messageIds) batch.fail(messageId, error);
    deps.log.warn('offboarding sweep could not be requested; the message will be retried', {
      userId: user.userId,
      errorCode: error.code,
      reason: error.message,
    });
  }
  const sent = leaving.filter((user) => !failures.has(user.userId));
  if (sent.length > 0)
    deps.log.info('offboarding sweep requested', {
      users: sent.map((user) => ({ userId: user.userId, offboardedAt: user.after.offboardedAt })),
    });
};

/**
 * @example const { changes, proofs } = await sweepStage(batch, recorded, applied.reads, deps, settings, deadline);
 */
const sweepStage = async (
  batch: BatchState,
  recorded: RecordedBatch,
  reads: TargetReads,
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<SweptBatch> => {
  const now = deps.now();
  const leaving = recorded.users.filter((user) => isTombstoned(user.after, now));
  if (leaving.length === 0) return { changes: [], proofs: [] };
  if (deps.sweepRequests === undefined)
    return sweepLeavers(batch, leaving, recorded, reads, deps, settings, deadline);
  await requestSweeps(batch, leaving, { ...deps, sweepRequests: deps.sweepRequests }, deadline);
  return { changes: [], proofs: [] };
};

export type { SweptBatch };
export { sweepLeavers, sweepStage };

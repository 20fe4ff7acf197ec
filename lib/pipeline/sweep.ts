/**
 * Stage 5: users who left the company lose everything else: every policy target and every
 * repository of the managed namespaces, page by page, resumable across deliveries (see
 * `lib/offboarding/sweep.ts`). A user whose sweep is not finished keeps their messages unsettled.
 */

import { isTombstoned } from '../core/desired.ts';
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

export { sweepStage };

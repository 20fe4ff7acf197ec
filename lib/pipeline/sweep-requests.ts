/**
 * The `offboarding-sweeps` queue's handler: many leavers' sweeps in one pass, so each target is
 * read once per delivery whatever the number of leavers (the offboarding messages were settled
 * once the known grants were revoked and these requests sent):
 *   parse (each body alone) ─► load (the store: is the user still tombstoned for that
 *   `offboardedAt`? a re-offboarded user is skipped, with a log record saying why; a rehired
 *   user is converged on their known targets from the newest record instead, as stage 4 does)
 *   ─► sweep (`sweepLeavers`, resumable) ─► audit ─► answer SQS (DLQ with reasons)
 * Why a rehired user is converged, not skipped: a sweep that saw the rehire while it ran planned
 * the user again from the newer record (grants included); if that round did not settle, the
 * retried request is the only message left to finish it, and skipping it left whatever that
 * round wrote (a grant of a team the user left again since).
 * A user whose sweep did not finish in this delivery keeps their messages unsettled: the progress
 * kept in the table makes the next delivery continue where this one stopped, and after the
 * receive limit the DLQ gets the reason. The scheduled reconcile finishes what is left either way.
 */
import { isTombstoned } from '../core/desired.ts';
import type { BatchUser } from '../core/planner.ts';
import { MetricNames } from '../observability.ts';
import { parseSweepRequest, type SweepRequest } from '../offboarding/requests.ts';
import { mapLimit } from '../pool.ts';
import { asSyncError } from '../read-targets.ts';
import { answerStage } from './answer.ts';
import { applyStage } from './apply.ts';
import { auditStage } from './audit.ts';
import { BatchState } from './batch-state.ts';
import { sweepLeavers } from './sweep.ts';
import type { BatchReport, PipelineDeps, PipelineRecord, PipelineSettings } from './types.ts';

const defaultAnswerGraceMs = 2_000;

/** Requests of one user, by tombstone (a user offboarded, rehired and offboarded again has two). */
interface UserRequests {
  userId: string;
  byTombstone: Map<string, string[]>;
}

const parseRequests = (batch: BatchState): UserRequests[] => {
  const users = new Map<string, UserRequests>();
  for (const record of batch.records) {
    const parsed = parseSweepRequest(record.body);
    if (!parsed.ok) {
      batch.fail(record.messageId, parsed.error);
      continue;
    }
    const { userId, offboardedAt }: SweepRequest = parsed.request;
    const entry = users.get(userId) ?? { userId, byTombstone: new Map<string, string[]>() };
    entry.byTombstone.set(offboardedAt, [...(entry.byTombstone.get(offboardedAt) ?? []), record.messageId]);
    users.set(userId, entry);
  }
  return [...users.values()];
};

type Verdict = { kind: 'sweep' } | { kind: 'converge' } | { kind: 'skip'; reason: string };

/**
 * What a request for the tombstone `offboardedAt` needs, given the user's record now: a sweep
 * (still that tombstone), a converge on the known targets (rehired since: a sweep that saw the
 * rehire mid-run may have planned grants it did not settle), or nothing.
 */
const verdictOf = (
  record: Awaited<ReturnType<PipelineDeps['store']['get']>>,
  offboardedAt: string,
  now: Date,
): Verdict => {
  if (record === undefined) return { kind: 'skip', reason: 'the store has no record of the user' };
  if (!isTombstoned(record, now)) return { kind: 'converge' };
  if (record.offboardedAt !== offboardedAt)
    return {
      kind: 'skip',
      reason: `the store holds another tombstone (${record.offboardedAt}): a later offboarding has its own sweep`,
    };
  return { kind: 'sweep' };
};

/**
 * The users to sweep now, as the store has them; a request whose tombstone the store no longer
 * holds is settled without a sweep (logged), one whose store read failed is retried.
 */
const loadLeavers = async (
  batch: BatchState,
  requests: readonly UserRequests[],
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<{ leavers: BatchUser[]; rehired: BatchUser[] }> => {
  const leavers: BatchUser[] = [];
  const rehired: BatchUser[] = [];
  const now = deps.now();
  await mapLimit(requests, settings.concurrency, async ({ userId, byTombstone }) => {
    let record: Awaited<ReturnType<PipelineDeps['store']['get']>>;
    try {
      record = await deps.store.get(userId, { deadline });
    } catch (error) {
      for (const messageIds of byTombstone.values())
        for (const messageId of messageIds) batch.fail(messageId, asSyncError(error));
      return;
    }
    for (const [offboardedAt, messageIds] of byTombstone) {
      const verdict = verdictOf(record, offboardedAt, now);
      if (verdict.kind === 'skip' || record === undefined) {
        deps.log.info('offboarding sweep skipped', {
          userId,
          offboardedAt,
          reason: verdict.kind === 'skip' ? verdict.reason : undefined,
          messages: messageIds.length,
        });
        continue;
      }
      const known = [...leavers, ...rehired].find((entry) => entry.userId === userId);
      if (known !== undefined) {
        known.messageIds.push(...messageIds);
        continue;
      }
      const user: BatchUser = {
        userId,
        userName: record.userName,
        before: record,
        after: record,
        messageIds: [...messageIds],
        eventIds: [],
        offboardingInBatch: verdict.kind === 'sweep',
        // In place of a sweep, which reads everything: a grant from before the offboarding or
        // planned by an unsettled round may sit on a team the record no longer names.
        ...(verdict.kind === 'converge' ? { checkEveryTarget: true } : {}),
      };
      if (verdict.kind === 'sweep') leavers.push(user);
      else {
        deps.log.info('offboarding sweep replaced by a converge: the user was rehired', {
          userId,
          offboardedAt,
        });
        rehired.push(user);
      }
    }
  });
  const byId = (a: BatchUser, b: BatchUser) => (a.userId < b.userId ? -1 : 1);
  return { leavers: leavers.sort(byId), rehired: rehired.sort(byId) };
};

/**
 * Sweeps the batch's leavers in one pass and answers SQS, as `processRecords` does for events.
 *
 * @example const report = await processSweepRequests(records, deps, settings, deadline); return report.response;
 */
const processSweepRequests = async (
  records: readonly PipelineRecord[],
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<BatchReport> => {
  const batch = new BatchState(records);
  deps.metrics.count(MetricNames.messagesIn, records.length);
  const requests = parseRequests(batch);
  const { leavers, rehired } = await loadLeavers(batch, requests, deps, settings, deadline);
  const converged =
    rehired.length === 0
      ? []
      : (await applyStage(batch, { users: rehired, sources: new Map() }, deps, settings, deadline)).changes;
  const swept = await sweepLeavers(
    batch,
    leavers,
    { users: leavers, sources: new Map() },
    undefined,
    deps,
    settings,
    deadline,
  );
  const answerBy = deadline + (settings.answerGraceMs ?? defaultAnswerGraceMs);
  const changes = [...converged, ...swept.changes];
  await auditStage(changes, deps, answerBy);
  return answerStage(batch, new Map(), changes, swept.proofs, deps, settings, answerBy);
};

export { processSweepRequests };

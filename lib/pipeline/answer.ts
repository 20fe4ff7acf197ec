/**
 * Stage 7: the answer to SQS. What cannot succeed is dead-lettered with its reason, what may
 * succeed later is retried, and each FIFO group keeps its order; a permanent failure that could
 * not be dead-lettered is retried rather than dropped.
 */
import { batchResponse, deadLetterNow, type MessageOutcome } from '../core/batch-response.ts';
import type { PeopleEvent } from '../domain.ts';
import type { SyncError } from '../errors.ts';
import { type AuditRecord, MetricNames } from '../observability.ts';
import type { OffboardingProof } from '../offboarding/sweep.ts';
import type { BatchState } from './batch-state.ts';
import type { BatchReport, MessageFailure, PipelineDeps, PipelineRecord, PipelineSettings } from './types.ts';

/** Outcome per message; a retryable failure on the queue's last receive counts as permanent. */
const outcomesOf = (batch: BatchState, settings: PipelineSettings) => {
  const lastReceive = (record: PipelineRecord): boolean =>
    settings.maxReceiveCount !== undefined && record.receiveCount >= settings.maxReceiveCount;
  return new Map(
    batch.records.map((record) => {
      const outcome = batch.outcome(record.messageId);
      return [record.messageId, outcome === 'retry' && lastReceive(record) ? 'permanent' : outcome] as const;
    }),
  );
};

const deadLetter = async (
  batch: BatchState,
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
) => {
  const ready = deadLetterNow(batch.records, outcomesOf(batch, settings));
  const letters = batch.records
    .filter((record) => ready.has(record.messageId))
    .map((record) => ({ ...record, error: batch.errorOf(record.messageId) as SyncError }));
  if (letters.length === 0) return { letters, sent: new Set<string>(), failed: new Map<string, string>() };
  const answer =
    deps.deadLetters === undefined
      ? {
          sent: [],
          failed: letters.map((letter) => ({ messageId: letter.messageId, reason: 'no DLQ configured' })),
        }
      : await deps.deadLetters.send(letters, deps.now(), { deadline });
  return {
    letters,
    sent: new Set(answer.sent),
    failed: new Map(answer.failed.map((entry) => [entry.messageId, entry.reason] as const)),
  };
};

const recordOffboardingLatency = (
  events: ReadonlyMap<string, PeopleEvent>,
  outcomes: ReadonlyMap<string, MessageOutcome>,
  deps: PipelineDeps,
): void => {
  const finishedAt = deps.now().getTime();
  for (const [messageId, event] of events)
    if (event.type === 'user.offboarded' && outcomes.get(messageId) === 'applied')
      deps.metrics.milliseconds(
        MetricNames.offboardingLatency,
        Math.max(0, finishedAt - Date.parse(event.effectiveAt ?? event.occurredAt)),
      );
};

/**
 * `deadline` bounds the dead-letter send (a little past the processing deadline: see
 * `answerGraceMs`).
 *
 * @example return answerStage(batch, events, changes, proofs, deps, settings, answerBy);
 */
const answerStage = async (
  batch: BatchState,
  events: ReadonlyMap<string, PeopleEvent>,
  changes: AuditRecord[],
  proofs: OffboardingProof[],
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<BatchReport> => {
  const { letters, sent, failed } = await deadLetter(batch, deps, settings, deadline);
  const deadLettered: MessageFailure[] = [];
  const undeliverable: MessageFailure[] = [];
  for (const letter of letters) {
    const failure = { messageId: letter.messageId, error: letter.error };
    const attributes = {
      messageId: letter.messageId,
      errorCode: letter.error.code,
      reason: letter.error.message,
    };
    if (sent.has(letter.messageId)) {
      deadLettered.push(failure);
      deps.log.error('message dead-lettered', { ...attributes, failedTarget: letter.error.target });
    } else {
      undeliverable.push(failure);
      deps.log.error('permanent failure could not be dead-lettered; it will be retried', {
        ...attributes,
        dlqError: failed.get(letter.messageId),
      });
    }
  }
  const outcomes = new Map<string, MessageOutcome>();
  const applied: string[] = [];
  const retried: MessageFailure[] = [];
  const stuck = new Set(undeliverable.map((failure) => failure.messageId));
  for (const record of batch.records) {
    const error = batch.errorOf(record.messageId);
    if (error === undefined) {
      applied.push(record.messageId);
      outcomes.set(record.messageId, 'applied');
    } else if (sent.has(record.messageId)) outcomes.set(record.messageId, 'dead-lettered');
    else {
      // Retryable failures, and permanent ones held behind a retry of their group.
      outcomes.set(record.messageId, 'retry');
      if (!stuck.has(record.messageId)) retried.push({ messageId: record.messageId, error });
    }
  }
  for (const failure of retried)
    deps.log.warn('message will be retried', {
      messageId: failure.messageId,
      errorCode: failure.error.code,
      reason: failure.error.message,
    });
  recordOffboardingLatency(events, outcomes, deps);
  deps.metrics.count(MetricNames.messagesApplied, applied.length);
  deps.metrics.count(MetricNames.messagesRetried, retried.length + undeliverable.length);
  deps.metrics.count(MetricNames.deadLettered, deadLettered.length);
  return {
    response: batchResponse(batch.records, outcomes),
    applied,
    retried,
    deadLettered,
    undeliverable,
    changes,
    proofs,
  };
};

export { answerStage };

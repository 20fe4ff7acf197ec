/**
 * Moves messages from a dead-letter queue back to its source queue, for when the cause of their
 * failure is fixed. Plain receive → send → delete, so it works the same on SQS and fauxqs and can
 * filter on the reason (`errorCode` attribute) the pipeline wrote:
 * - to a FIFO source, the copy keeps the MessageGroupId (per-user order) and MessageDeduplicationId
 *   (read from the message's system attributes; for an old letter without one, the
 *   `sourceMessageId` attribute); a standard source takes neither;
 * - the DLQ attributes (reason, attempts…) are dropped, other attributes are kept;
 * - a message is deleted from the DLQ ONLY after SQS reported its copy as sent (`Successful[]`);
 *   a failed send leaves it in the DLQ, visible again at the end of the run;
 * - messages not moved (filtered out, dry run, failed) are held invisible while the run lasts, so
 *   each is looked at once, and made visible again at once when it ends. In a FIFO DLQ a held
 *   message also hides the later messages of its group until then (SQS locks a group while one of
 *   its messages is in flight): a filtered run never moves a message ahead of its group.
 *
 * - a letter whose body the dead-letter sender had to shorten (`bodyTruncated`) is never sent:
 *   its body is not the event. It stays in the DLQ, reported as failed with the hash of the
 *   original body, so a person can find the original at its producer and send it again.
 *
 * Bounded: stops at the first receive that brings nothing new, or after `max` messages.
 *
 * SQS drops a copy whose deduplication id it saw on the source queue in the last 5 minutes (and
 * still reports it sent): redrive a letter that SQS moved itself (after maxReceiveCount) only once
 * 5 minutes have passed since it was first sent. Letters the pipeline dead-lettered at once carry
 * the source message id as deduplication id, which the source queue never saw.
 */
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { ErrorCodes, SyncError } from './errors.ts';

/** The attributes the pipeline's dead-letter sender adds (lib/dlq.ts): not part of the message. */
const deadLetterAttributeNames = new Set([
  'errorCode',
  'errorMessage',
  'attempts',
  'sourceMessageId',
  'failedAt',
  'failedTarget',
  'bodySha256',
  'bodyBytes',
  'bodyTruncated',
  'letterRefused',
]);

/** Why a letter cannot be redriven as it is, or `undefined`: its body was shortened to fit the DLQ. */
const shortenedBody = (message: Message): string | undefined => {
  const attributes = message.MessageAttributes ?? {};
  if (attributes.bodyTruncated?.StringValue !== 'true') return undefined;
  const bytes = attributes.bodyBytes?.StringValue ?? 'unknown';
  const hash = attributes.bodySha256?.StringValue ?? 'unknown';
  return (
    `body was shortened to fit the DLQ (original ${bytes} bytes, sha256 ${hash}); ` +
    'it is not the event: resend the original from its producer. Left in the DLQ'
  );
};

interface RedriveOptions {
  sqs: SQSClient;
  dlqUrl: string;
  sourceUrl: string;
  /** Move only messages whose `errorCode` attribute is this; others stay in the DLQ. */
  errorCode?: string;
  /** Look and report; move nothing. */
  dryRun?: boolean;
  /** Most messages to look at (moved or not); default 1000. */
  max?: number;
  /** How long held messages stay invisible if the run dies before releasing them; default 300 s. */
  holdSeconds?: number;
  onProgress?: (progress: { seen: number; moved: number; skipped: number; failed: number }) => void;
}

type RedriveStatus = 'moved' | 'would-move' | 'skipped' | 'failed';

interface RedriveEntry {
  messageId: string;
  groupId: string | undefined;
  errorCode: string | undefined;
  status: RedriveStatus;
  /** Why a message failed. */
  reason?: string;
}

interface RedriveReport {
  dryRun: boolean;
  /** Moved to the source queue and deleted from the DLQ (dry run: would be moved). */
  moved: number;
  /** Left in the DLQ: another error code. */
  skipped: number;
  failed: number;
  entries: RedriveEntry[];
  /** Problems that lost nothing (held messages not released early). */
  warnings: string[];
}

/** A receive or release that failed outright: the run stops, what was moved stays moved. */
class RedriveError extends SyncError {
  readonly report: RedriveReport;

  constructor(message: string, report: RedriveReport, options?: ErrorOptions) {
    super(message, { ...options, code: ErrorCodes.network, retryable: true });
    this.name = 'RedriveError';
    this.report = report;
  }
}

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

const keptAttributes = (message: Message): Record<string, MessageAttributeValue> | undefined => {
  const kept = Object.entries(message.MessageAttributes ?? {}).filter(
    ([name]) => !deadLetterAttributeNames.has(name),
  );
  return kept.length === 0 ? undefined : Object.fromEntries(kept);
};

const dedupIdOf = (message: Message): string | undefined =>
  message.Attributes?.MessageDeduplicationId ?? message.MessageAttributes?.sourceMessageId?.StringValue;

/**
 * @example
 * const report = await redrive({ sqs, dlqUrl, sourceUrl, errorCode: 'SVCSTG.SWR.4040010', max: 100 });
 * console.log(`${report.moved} moved, ${report.skipped} skipped, ${report.failed} failed`);
 */
const redrive = async (options: RedriveOptions): Promise<RedriveReport> => {
  const { sqs, dlqUrl, sourceUrl, errorCode, dryRun = false, max = 1000, holdSeconds = 300 } = options;
  const report: RedriveReport = { dryRun, moved: 0, skipped: 0, failed: 0, entries: [], warnings: [] };
  const seen = new Set<string>();
  const held: Array<{ Id: string; ReceiptHandle: string }> = [];

  const record = (message: Message, status: RedriveStatus, reason?: string): void => {
    report.entries.push({
      messageId: message.MessageId ?? '',
      groupId: message.Attributes?.MessageGroupId,
      errorCode: message.MessageAttributes?.errorCode?.StringValue,
      status,
      ...(reason === undefined ? {} : { reason }),
    });
    if (status === 'moved' || status === 'would-move') report.moved += 1;
    else if (status === 'skipped') report.skipped += 1;
    else report.failed += 1;
  };
  const hold = (message: Message): void => {
    if (message.ReceiptHandle !== undefined)
      held.push({ Id: String(held.length), ReceiptHandle: message.ReceiptHandle });
  };

  // A FIFO source keeps each user's order and de-duplicates; a standard one has neither.
  const fifo = sourceUrl.endsWith('.fifo');

  /** Sends the copies; deletes only those SQS reports as sent. */
  const move = async (messages: Message[]): Promise<void> => {
    const sendable: Array<{ message: Message; groupId: string | undefined; dedupId: string | undefined }> =
      [];
    for (const message of messages) {
      const groupId = message.Attributes?.MessageGroupId;
      const dedupId = dedupIdOf(message);
      if (fifo && (groupId === undefined || dedupId === undefined)) {
        record(message, 'failed', 'no MessageGroupId or deduplication id to keep: left in the DLQ');
        hold(message);
      } else sendable.push({ message, groupId, dedupId });
    }
    if (sendable.length === 0) return;
    let sentIds: Set<string>;
    const reasons = new Map<string, string>();
    try {
      const answer = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: sourceUrl,
          Entries: sendable.map(({ message, groupId, dedupId }, index) => {
            const attributes = keptAttributes(message);
            return {
              Id: String(index),
              MessageBody: message.Body ?? '',
              ...(fifo ? { MessageGroupId: groupId, MessageDeduplicationId: dedupId } : {}),
              ...(attributes === undefined ? {} : { MessageAttributes: attributes }),
            };
          }),
        }),
      );
      for (const failure of answer.Failed ?? [])
        reasons.set(failure.Id ?? '', `send failed: ${failure.Code ?? 'unknown'}: ${failure.Message ?? ''}`);
      // Only what SQS lists as sent counts: an entry in neither list was not sent.
      sentIds = new Set(
        (answer.Successful ?? []).map((entry) => entry.Id ?? '').filter((id) => !reasons.has(id)),
      );
    } catch (error) {
      sentIds = new Set();
      for (let index = 0; index < sendable.length; index += 1)
        reasons.set(String(index), `send failed: ${describe(error)}`);
    }
    const sent = sendable.filter((_, index) => sentIds.has(String(index)));
    sendable.forEach(({ message }, index) => {
      if (!sentIds.has(String(index))) {
        record(message, 'failed', reasons.get(String(index)) ?? 'send failed: not reported as sent');
        hold(message);
      }
    });
    if (sent.length === 0) return;
    const deleteFailures = new Map<string, string>();
    try {
      const answer = await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: dlqUrl,
          Entries: sent.map(({ message }, index) => ({
            Id: String(index),
            ReceiptHandle: message.ReceiptHandle,
          })),
        }),
      );
      for (const failure of answer.Failed ?? [])
        deleteFailures.set(failure.Id ?? '', `${failure.Code ?? 'unknown'}: ${failure.Message ?? ''}`);
    } catch (error) {
      for (let index = 0; index < sent.length; index += 1) deleteFailures.set(String(index), describe(error));
    }
    sent.forEach(({ message }, index) => {
      const failure = deleteFailures.get(String(index));
      if (failure === undefined) record(message, 'moved');
      else
        record(
          message,
          'failed',
          `copied to the source queue but not deleted from the DLQ (${failure}); a rerun within 5 minutes is deduplicated by SQS`,
        );
    });
  };

  const release = async (): Promise<void> => {
    for (let start = 0; start < held.length; start += 10) {
      const entries = held.slice(start, start + 10).map((entry, index) => ({
        Id: String(index),
        ReceiptHandle: entry.ReceiptHandle,
        VisibilityTimeout: 0,
      }));
      await sqs.send(new ChangeMessageVisibilityBatchCommand({ QueueUrl: dlqUrl, Entries: entries }));
    }
  };

  try {
    while (seen.size < max) {
      let messages: Message[];
      try {
        const answer = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: dlqUrl,
            MaxNumberOfMessages: Math.min(10, max - seen.size),
            MessageAttributeNames: ['All'],
            MessageSystemAttributeNames: ['MessageGroupId', 'MessageDeduplicationId'],
            VisibilityTimeout: holdSeconds,
            WaitTimeSeconds: 0,
          }),
        );
        messages = answer.Messages ?? [];
      } catch (error) {
        throw new RedriveError(`receive from the DLQ failed: ${describe(error)}`, report, { cause: error });
      }
      // A message seen before came back (its hold ended): the rest is what we saw already.
      const fresh = messages.filter((message) => !seen.has(message.MessageId ?? ''));
      for (const message of messages)
        if (!fresh.includes(message) && message.ReceiptHandle !== undefined) hold(message);
      if (fresh.length === 0) break;
      const toMove: Message[] = [];
      for (const message of fresh) {
        seen.add(message.MessageId ?? '');
        const code = message.MessageAttributes?.errorCode?.StringValue;
        const shortened = shortenedBody(message);
        if (errorCode !== undefined && code !== errorCode) {
          record(message, 'skipped');
          hold(message);
        } else if (shortened !== undefined) {
          record(message, 'failed', shortened);
          hold(message);
        } else if (dryRun) {
          record(message, 'would-move');
          hold(message);
        } else toMove.push(message);
      }
      if (toMove.length > 0) await move(toMove);
      options.onProgress?.({
        seen: seen.size,
        moved: report.moved,
        skipped: report.skipped,
        failed: report.failed,
      });
    }
  } finally {
    try {
      await release();
    } catch (error) {
      // The holds end on their own after holdSeconds; nothing is lost, only delayed.
      report.warnings.push(
        `could not make held messages visible again (they will be after ${holdSeconds} s): ${describe(error)}`,
      );
    }
  }
  return report;
};

/** @example queueUrlVariables.accessChanges.dlq // 'ACCESS_CHANGES_DLQ_URL' */
const queueUrlVariables = {
  accessChanges: { source: 'ACCESS_CHANGES_QUEUE_URL', dlq: 'ACCESS_CHANGES_DLQ_URL' },
  offboarding: { source: 'OFFBOARDING_QUEUE_URL', dlq: 'OFFBOARDING_DLQ_URL' },
  offboardingSweeps: { source: 'OFFBOARDING_SWEEPS_QUEUE_URL', dlq: 'OFFBOARDING_SWEEPS_DLQ_URL' },
} as const;

export type { RedriveEntry, RedriveOptions, RedriveReport, RedriveStatus };
export { deadLetterAttributeNames, queueUrlVariables, RedriveError, redrive };

/**
 * Sends permanently failed messages straight to their queue's DLQ, with the reason in message
 * attributes, instead of letting SQS retry them maxReceiveCount times (retrying a schema error
 * only delays the rest of the user's messages). A message whose send fails is reported back so
 * the caller lists it as a batch item failure: it is retried, never lost.
 */
import { type MessageAttributeValue, SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SyncError } from './errors.ts';

/** One message to dead-letter: the original as received, and why it cannot succeed. */
interface DeadLetter {
  messageId: string;
  body: string;
  groupId: string | undefined;
  receiveCount: number;
  error: SyncError;
}

interface DeadLetterResult {
  sent: string[];
  failed: Array<{ messageId: string; reason: string }>;
}

interface DeadLetterSender {
  send(letters: readonly DeadLetter[], failedAt: Date): Promise<DeadLetterResult>;
}

/** SQS caps a message attribute at the message size; a person reads the first lines anyway. */
const maxReasonLength = 1_000;
/** FIFO group ids are at most 128 characters; an absent group (standard queue) gets one. */
const fallbackGroupId = 'dead-letters';

const text = (value: string): MessageAttributeValue => ({ DataType: 'String', StringValue: value });

/** The DLQ attributes of one letter. `failedTarget` is left out when no target was involved. */
const attributesOf = (letter: DeadLetter, failedAt: Date): Record<string, MessageAttributeValue> => {
  const attributes: Record<string, MessageAttributeValue> = {
    errorCode: text(letter.error.code),
    errorMessage: text(letter.error.message.slice(0, maxReasonLength) || letter.error.name),
    attempts: { DataType: 'Number', StringValue: String(Math.max(1, letter.receiveCount)) },
    sourceMessageId: text(letter.messageId),
    failedAt: text(failedAt.toISOString()),
  };
  if (letter.error.target !== undefined) attributes.failedTarget = text(letter.error.target);
  return attributes;
};

const chunksOf = <T>(items: readonly T[], size: number): T[][] => {
  const chunks: T[][] = [];
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size));
  return chunks;
};

/**
 * @example
 * const dlq = createDeadLetterSender({ sqs, queueUrl: config.dlqUrls.accessChanges });
 * const { sent, failed } = await dlq.send(letters, new Date());
 */
const createDeadLetterSender = (deps: { sqs: SQSClient; queueUrl: string }): DeadLetterSender => ({
  async send(letters, failedAt) {
    const result: DeadLetterResult = { sent: [], failed: [] };
    for (const chunk of chunksOf(letters, 10)) {
      try {
        const answer = await deps.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: deps.queueUrl,
            Entries: chunk.map((letter, index) => ({
              Id: String(index),
              MessageBody: letter.body === '' ? ' ' : letter.body,
              MessageGroupId: letter.groupId ?? fallbackGroupId,
              // The source message id: sending the same letter twice (a retry after a crash)
              // leaves one copy in the DLQ.
              MessageDeduplicationId: letter.messageId,
              MessageAttributes: attributesOf(letter, failedAt),
            })),
          }),
        );
        const failedIds = new Map((answer.Failed ?? []).map((entry) => [entry.Id, entry]));
        chunk.forEach((letter, index) => {
          const failure = failedIds.get(String(index));
          if (failure === undefined) result.sent.push(letter.messageId);
          else
            result.failed.push({
              messageId: letter.messageId,
              reason: `${failure.Code ?? 'unknown'}: ${failure.Message ?? 'no message'}`,
            });
        });
      } catch (error) {
        const reason = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        for (const letter of chunk) result.failed.push({ messageId: letter.messageId, reason });
      }
    }
    return result;
  },
});

export type { DeadLetter, DeadLetterResult, DeadLetterSender };
export { attributesOf, createDeadLetterSender };

/**
 * The answer to SQS (ReportBatchItemFailures) for a FIFO batch. Pure.
 *
 * FIFO order is per message group: if a message must be retried, every later message of its group
 * must be retried too, or SQS would delete them and the group's order would break (a leave applied
 * before the join it follows). Other groups carry on.
 */
import type { SQSBatchResponse } from 'aws-lambda';

/** What happened to one message of the batch. */
type MessageOutcome = 'applied' | 'dead-lettered' | 'retry';

interface BatchMessage {
  messageId: string;
  /** `undefined` on a standard queue: no ordering to protect. */
  groupId: string | undefined;
}

/**
 * @example
 * batchResponse([{ messageId: 'm1', groupId: 'u1' }, { messageId: 'm2', groupId: 'u1' }],
 *   new Map([['m1', 'retry'], ['m2', 'applied']]))
 * // { batchItemFailures: [{ itemIdentifier: 'm1' }, { itemIdentifier: 'm2' }] }
 */
const batchResponse = (
  messages: readonly BatchMessage[],
  outcomes: ReadonlyMap<string, MessageOutcome>,
): SQSBatchResponse => {
  const blockedGroups = new Set<string>();
  const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
  for (const message of messages) {
    // A message without an outcome was never finished: retry it rather than let SQS delete it.
    const outcome = outcomes.get(message.messageId) ?? 'retry';
    const blocked = message.groupId !== undefined && blockedGroups.has(message.groupId);
    if (outcome === 'retry' || blocked) {
      batchItemFailures.push({ itemIdentifier: message.messageId });
      if (message.groupId !== undefined) blockedGroups.add(message.groupId);
    }
  }
  return { batchItemFailures };
};

/**
 * The permanently failed messages that may go to the DLQ now: those not behind a retried message
 * of their group. One behind it is retried with it instead, so that the group's order holds and a
 * message is never both in the DLQ and back on the queue.
 */
const deadLetterNow = (
  messages: readonly BatchMessage[],
  outcomes: ReadonlyMap<string, 'applied' | 'permanent' | 'retry'>,
): Set<string> => {
  const blockedGroups = new Set<string>();
  const ready = new Set<string>();
  for (const message of messages) {
    const outcome = outcomes.get(message.messageId) ?? 'retry';
    const blocked = message.groupId !== undefined && blockedGroups.has(message.groupId);
    if (outcome === 'permanent' && !blocked) ready.add(message.messageId);
    if ((outcome === 'retry' || blocked) && message.groupId !== undefined) blockedGroups.add(message.groupId);
  }
  return ready;
};

/** Every message listed: the answer when the batch could not be handled at all. */
const failEverything = (messages: readonly BatchMessage[]): SQSBatchResponse => ({
  batchItemFailures: messages.map((message) => ({ itemIdentifier: message.messageId })),
});

export type { BatchMessage, MessageOutcome };
export { batchResponse, deadLetterNow, failEverything };

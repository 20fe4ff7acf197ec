/**
 * Sends permanently failed messages straight to their queue's DLQ, with the reason in message
 * attributes, instead of letting SQS retry them maxReceiveCount times (retrying a schema error
 * only delays the rest of the user's messages). A message whose send fails for a passing reason
 * is reported back so the caller lists it as a batch item failure: it is retried, never lost.
 *
 * Whatever its size, a letter keeps its reason:
 * - batches are cut by count (10) and by size, counted as SQS counts a message (body and every
 *   attribute's name, type and value, in UTF-8 bytes);
 * - a letter over the message limit is shortened: a prefix of the body is kept, and the attributes
 *   `bodySha256` (of the whole body), `bodyBytes` and `bodyTruncated: true` say so (redrive never
 *   sends such a body back as if it were the event);
 * - an entry SQS refuses (`Failed[]`), or a batch refused whole for its size or content, is sent
 *   again on its own; if SQS refuses that too for what it carries, a minimal letter goes instead:
 *   the reason, the body's hash and size, and the source message id.
 * Error text in attributes passes `redactSecrets`, and characters SQS does not accept in a message
 * are replaced, so an echo from upstream can neither leak a secret nor get the letter refused.
 */
import { createHash } from 'node:crypto';
import {
  type MessageAttributeValue,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { AwsDeadlineError, callAws } from './aws.ts';
import type { CallOptions } from './domain.ts';
import type { SyncError } from './errors.ts';
import { redactSecrets } from './redact.ts';

/** One message to dead-letter: the original as received, and why it cannot succeed. */
interface DeadLetter {
  messageId: string;
  body: string;
  groupId: string | undefined;
  receiveCount: number;
  error: SyncError;
}

interface DeadLetterResult {
  /** Source message ids now in the DLQ (shortened and minimal letters included). */
  sent: string[];
  failed: Array<{ messageId: string; reason: string }>;
  /** Sent with a shortened body (`bodyTruncated`). */
  shortened?: string[];
  /** Sent as a minimal letter: SQS refused the full one. */
  minimal?: string[];
}

interface DeadLetterSender {
  /** Bounded by `options.deadline`: letters not sent by then are reported failed (retryable). */
  send(letters: readonly DeadLetter[], failedAt: Date, options?: CallOptions): Promise<DeadLetterResult>;
}

/** SQS limits the sender keeps to. */
interface DeadLetterLimits {
  /** Body plus attributes of one message. */
  messageBytes: number;
  /** Sum of the messages of one SendMessageBatch. */
  batchBytes: number;
  entries: number;
}

/**
 * 256 KiB per message: SQS now takes up to 1 MiB, but a queue created before August 2025 keeps
 * `MaximumMessageSize` 262,144 unless changed, and serverless.yml does not set it; a letter that
 * fits 256 KiB fits every queue. 1 MiB per batch (SQS's current batch limit): a region or
 * emulator still at 256 KiB refuses the batch with `BatchRequestTooLong`, and the sender then
 * sends each letter on its own.
 */
const defaultLimits: DeadLetterLimits = { messageBytes: 262_144, batchBytes: 1_048_576, entries: 10 };

/** A person reads the first lines of a reason; longer texts only hide the first problem. */
const maxReasonLength = 1_000;
/** The minimal letter keeps a shorter reason: it must go through whatever refused the full one. */
const minimalReasonLength = 256;
/** FIFO group ids are at most 128 characters; an absent group (standard queue) gets one. */
const fallbackGroupId = 'dead-letters';

/** SQS refuses a batch whole for these; each letter is then sent on its own. */
const refusedForContent = new Set([
  'BatchRequestTooLong',
  'InvalidMessageContents',
  'InvalidParameterValue',
  'InvalidAttributeValue',
  'InvalidAttributeName',
]);

// Characters SQS accepts in a body or attribute value: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF.
const unacceptable = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/** Text SQS accepts, never empty. */
const acceptable = (text: string): string => text.replace(unacceptable, '\uFFFD') || ' ';
/** Plainer still, for the last resort: some SQS implementations (fauxqs) refuse non-BMP characters. */
const plain = (text: string): string => acceptable(text).replace(/[\u{10000}-\u{10FFFF}]/gu, '\uFFFD');

const text = (value: string): MessageAttributeValue => ({
  DataType: 'String',
  StringValue: acceptable(value),
});
const number = (value: number): MessageAttributeValue => ({ DataType: 'Number', StringValue: String(value) });

const utf8Bytes = (value: string): number => Buffer.byteLength(value, 'utf8');

/**
 * A message's size as SQS counts it: the body, and each attribute's name, data type and value.
 *
 * @example sqsMessageSize('{}', { errorCode: { DataType: 'String', StringValue: 'SCHEMA' } }) // 2 + 9 + 6 + 6 = 23
 */
const sqsMessageSize = (body: string, attributes: Record<string, MessageAttributeValue>): number =>
  Object.entries(attributes).reduce(
    (sum, [name, value]) =>
      sum +
      utf8Bytes(name) +
      utf8Bytes(value.DataType ?? '') +
      (value.StringValue === undefined ? 0 : utf8Bytes(value.StringValue)) +
      (value.BinaryValue === undefined ? 0 : value.BinaryValue.byteLength),
    utf8Bytes(body),
  );

/** The longest prefix of `value` of at most `maxBytes` UTF-8 bytes, never splitting a character. */
const utf8Prefix = (value: string, maxBytes: number): string => {
  let bytes = 0;
  let end = 0;
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    const size = code <= 0x7f ? 1 : code <= 0x7ff ? 2 : code <= 0xffff ? 3 : 4;
    if (bytes + size > maxBytes) break;
    bytes += size;
    end += char.length;
  }
  return value.slice(0, end);
};

const reasonOf = (letter: DeadLetter, length: number): string =>
  redactSecrets(letter.error.message || letter.error.name).slice(0, length);

/** The DLQ attributes of one letter. `failedTarget` is left out when no target was involved. */
const attributesOf = (letter: DeadLetter, failedAt: Date): Record<string, MessageAttributeValue> => {
  const attributes: Record<string, MessageAttributeValue> = {
    errorCode: text(letter.error.code),
    errorMessage: text(reasonOf(letter, maxReasonLength)),
    attempts: number(Math.max(1, letter.receiveCount)),
    sourceMessageId: text(letter.messageId),
    failedAt: text(failedAt.toISOString()),
  };
  if (letter.error.target !== undefined) attributes.failedTarget = text(letter.error.target);
  return attributes;
};

const sha256 = (value: string): string => createHash('sha256').update(value, 'utf8').digest('hex');

/** What one letter becomes on the wire (the batch entry without its id), and its SQS size. */
interface Outgoing {
  entry: Omit<SendMessageBatchRequestEntry, 'Id'>;
  letter: DeadLetter;
  bytes: number;
  shortened: boolean;
}

const bodyAttributes = (body: string): Record<string, MessageAttributeValue> => ({
  bodySha256: text(sha256(body)),
  bodyBytes: number(utf8Bytes(body)),
  bodyTruncated: text('true'),
});

const outgoing = (
  letter: DeadLetter,
  body: string,
  attributes: Record<string, MessageAttributeValue>,
  shortened: boolean,
  fifo: boolean,
): Outgoing => ({
  entry: {
    MessageBody: body,
    // Group and dedup ids only for a FIFO DLQ (a standard queue refuses a dedup id). There, the
    // source message id as dedup id: sending the same letter twice (a retry after a crash, or a
    // minimal letter after a full one SQS did take) leaves one copy in the DLQ.
    ...(fifo
      ? { MessageGroupId: letter.groupId ?? fallbackGroupId, MessageDeduplicationId: letter.messageId }
      : {}),
    MessageAttributes: attributes,
  },
  letter,
  bytes: sqsMessageSize(body, attributes),
  shortened,
});

/** The letter as sent: the original body when it fits the message limit, else a prefix of it. */
const prepare = (letter: DeadLetter, failedAt: Date, limits: DeadLetterLimits, fifo: boolean): Outgoing => {
  const body = letter.body === '' ? ' ' : letter.body;
  const attributes = attributesOf(letter, failedAt);
  if (sqsMessageSize(body, attributes) <= limits.messageBytes)
    return outgoing(letter, body, attributes, false, fifo);
  const marked = { ...attributes, ...bodyAttributes(letter.body) };
  const room = limits.messageBytes - sqsMessageSize('', marked);
  return outgoing(letter, utf8Prefix(body, Math.max(0, room)) || ' ', marked, true, fifo);
};

/** The last resort: the reason, the body's hash and size, the source message id. */
const minimalLetter = (letter: DeadLetter, failedAt: Date, refusal: string, fifo: boolean): Outgoing => {
  const attributes: Record<string, MessageAttributeValue> = {
    errorCode: text(plain(letter.error.code.slice(0, 128))),
    errorMessage: text(plain(reasonOf(letter, minimalReasonLength))),
    sourceMessageId: text(plain(letter.messageId)),
    failedAt: text(failedAt.toISOString()),
    ...bodyAttributes(letter.body),
    letterRefused: text(plain(redactSecrets(refusal).slice(0, minimalReasonLength))),
  };
  const body = `[dead letter without its body (${utf8Bytes(letter.body)} bytes): see the message attributes]`;
  return outgoing(letter, body, attributes, true, fifo);
};

/** Cuts the letters into batches by count and by size, in order (FIFO order within a group). */
const batchesOf = (letters: readonly Outgoing[], limits: DeadLetterLimits): Outgoing[][] => {
  const batches: Outgoing[][] = [];
  let current: Outgoing[] = [];
  let bytes = 0;
  for (const letter of letters) {
    if (
      current.length > 0 &&
      (current.length >= limits.entries || bytes + letter.bytes > limits.batchBytes)
    ) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(letter);
    bytes += letter.bytes;
  }
  if (current.length > 0) batches.push(current);
  return batches;
};

const describe = (error: unknown): string =>
  redactSecrets(error instanceof Error ? `${error.name}: ${error.message}` : String(error));

/**
 * How one send ended for one letter: `refused` is SQS saying the letter itself is at fault (too
 * large, a character it does not take); `failed` is weather, `again` when sending that letter on
 * its own may help (an entry of `Failed[]`), `stop` when the deadline came.
 */
type EntryOutcome =
  | { kind: 'sent' }
  | { kind: 'refused'; reason: string }
  | { kind: 'failed'; reason: string; again: boolean; stop: boolean };

interface SenderDeps {
  sqs: SQSClient;
  queueUrl: string;
  /** SQS limits (defaults: 256 KiB per message, 1 MiB per batch, 10 entries); tests lower them. */
  limits?: Partial<DeadLetterLimits>;
}

/**
 * @example
 * const dlq = createDeadLetterSender({ sqs, queueUrl: config.dlqUrls.accessChanges });
 * const { sent, failed } = await dlq.send(letters, new Date(), { deadline });
 */
const createDeadLetterSender = (deps: SenderDeps): DeadLetterSender => {
  const limits: DeadLetterLimits = { ...defaultLimits, ...deps.limits };
  // A FIFO DLQ (the offboarding queue's) keeps each user's order; a standard one has no groups.
  const fifo = deps.queueUrl.endsWith('.fifo');

  /** Sends one batch; one outcome per letter, in order. */
  const sendBatch = async (
    batch: readonly Outgoing[],
    options: CallOptions | undefined,
  ): Promise<EntryOutcome[]> => {
    try {
      const answer = await callAws('SQS SendMessageBatch', options, (abortSignal) =>
        deps.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: deps.queueUrl,
            Entries: batch.map(({ entry }, index) => ({ Id: String(index), ...entry })),
          }),
          { abortSignal },
        ),
      );
      const failures = new Map((answer.Failed ?? []).map((entry) => [entry.Id, entry]));
      return batch.map((_, index): EntryOutcome => {
        const failure = failures.get(String(index));
        if (failure === undefined) return { kind: 'sent' };
        const reason = redactSecrets(`${failure.Code ?? 'unknown'}: ${failure.Message ?? 'no message'}`);
        return failure.SenderFault === true
          ? { kind: 'refused', reason }
          : { kind: 'failed', reason, again: true, stop: false };
      });
    } catch (error) {
      const reason = describe(error);
      const name = error instanceof Error ? error.name : '';
      // The SDK already retried a network failure: the caller's retry (SQS redelivery) comes next.
      return batch.map(
        (): EntryOutcome =>
          refusedForContent.has(name)
            ? { kind: 'refused', reason }
            : { kind: 'failed', reason, again: false, stop: error instanceof AwsDeadlineError },
      );
    }
  };

  return {
    async send(letters, failedAt, options) {
      const sent: string[] = [];
      const failed: DeadLetterResult['failed'] = [];
      const shortened: string[] = [];
      const minimal: string[] = [];
      let stopped: string | undefined;

      const settle = (outgoingLetter: Outgoing, outcome: EntryOutcome): void => {
        const { messageId } = outgoingLetter.letter;
        if (outcome.kind === 'failed' && outcome.stop) stopped = outcome.reason;
        if (outcome.kind !== 'sent') failed.push({ messageId, reason: outcome.reason });
        else {
          sent.push(messageId);
          if (outgoingLetter.shortened) shortened.push(messageId);
        }
      };

      /** Sends a letter on its own; one SQS refuses for what it carries goes as a minimal letter. */
      const alone = async (letter: Outgoing, firstReason: string): Promise<void> => {
        if (stopped !== undefined)
          return settle(letter, { kind: 'failed', reason: stopped, again: false, stop: true });
        const [again] = (await sendBatch([letter], options)) as [EntryOutcome];
        if (again.kind !== 'refused') return settle(letter, again);
        const last = minimalLetter(
          letter.letter,
          failedAt,
          `${firstReason}; sent alone: ${again.reason}`,
          fifo,
        );
        const [outcome] = (await sendBatch([last], options)) as [EntryOutcome];
        if (outcome.kind === 'sent') minimal.push(letter.letter.messageId);
        settle(
          last,
          outcome.kind === 'refused' ? { ...outcome, kind: 'failed', again: false, stop: false } : outcome,
        );
      };

      const prepared = letters.map((letter) => prepare(letter, failedAt, limits, fifo));
      for (const batch of batchesOf(prepared, limits)) {
        if (stopped !== undefined) {
          for (const letter of batch)
            settle(letter, { kind: 'failed', reason: stopped, again: false, stop: true });
          continue;
        }
        const outcomes = await sendBatch(batch, options);
        // Letters sent alone land after the rest of their batch: harmless, the store orders facts
        // by their instants, not by arrival.
        for (const [index, letter] of batch.entries()) {
          const outcome = outcomes[index] as EntryOutcome;
          if (outcome.kind === 'refused' || (outcome.kind === 'failed' && outcome.again && batch.length > 1))
            await alone(letter, outcome.reason);
          else settle(letter, outcome);
        }
      }
      return {
        sent,
        failed,
        ...(shortened.length === 0 ? {} : { shortened }),
        ...(minimal.length === 0 ? {} : { minimal }),
      };
    },
  };
};

export type { DeadLetter, DeadLetterLimits, DeadLetterResult, DeadLetterSender };
export { attributesOf, createDeadLetterSender, defaultLimits, sqsMessageSize, utf8Prefix };

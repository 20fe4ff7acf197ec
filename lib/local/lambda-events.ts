/**
 * Builds Lambda SQS events shaped exactly as Lambda's event source mapping delivers them for a
 * FIFO queue (attribute names, string-typed numbers, md5 of body and attributes, ARN and region),
 * for unit tests and for the committed `events/sqs-*.json` files used with
 * `serverless invoke local -f sync -p events/sqs-join.json`.
 *
 * Every default is derived from the inputs (no clock, no randomness), so the same input always
 * gives the same event: the committed files are rebuilt and compared by a unit test.
 */
import { createHash } from 'node:crypto';
import type { SQSEvent, SQSMessageAttributes, SQSRecord } from 'aws-lambda';
import { ErrorCodes, SyncError } from '../errors.ts';

/** An SQS event that Lambda could never deliver: a bug in the test that builds it. */
class SqsEventBuildError extends SyncError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: ErrorCodes.schema, retryable: false });
    this.name = 'SqsEventBuildError';
  }
}

/** Lambda polls at most 10 messages per batch from a FIFO queue. */
const maxFifoBatchSize = 10;

/** Used when neither `sentAt` nor the body's `occurredAt` gives a time. */
const defaultSentAt = Date.UTC(2026, 10, 20, 10, 0, 0);
/** A producer role's SenderId (role id : session name), as SQS reports it for assumed roles. */
const defaultSenderId = 'AROAEXAMPLEPRODUCER01:people-events-producer';

/** FIFO group and deduplication ids: 1–128 printable ASCII characters (SQS's rule). */
const fifoIdPattern = /^[\x21-\x7e]{1,128}$/;
const queueArnPattern = /^arn:aws[a-z-]*:sqs:([a-z0-9-]+):(\d{12}):([\w-]{1,80}|[\w-]{1,75}\.fifo)$/;
/** Lambda's batch limits: 10 for a FIFO queue, 10,000 for a standard one. */
const maxStandardBatchSize = 10_000;

interface SqsRecordInput {
  /** The message body exactly as the producer sent it (usually `JSON.stringify(event)`). */
  body: string;
  /** Default: a UUID derived from queue, group and deduplication id (stable across receives). */
  messageId?: string;
  /** FIFO queues only (and required there): the message group, the deduplication id. */
  groupId?: string;
  dedupId?: string;
  /** ARN of the source queue (a FIFO queue's name ends in `.fifo`); the record's region comes from it. */
  queueArn: string;
  /** Default 1; a redelivery after a failed attempt has 2, 3, … */
  receiveCount?: number;
  /** Default: one second after the body's `occurredAt`, else 2026-11-20T10:00:00Z. */
  sentAt?: Date | number;
  /** Default: 25 ms after `sentAt`. */
  firstReceivedAt?: Date | number;
  /** Default: a 20-digit number that grows with `sentAt`. */
  sequenceNumber?: string;
  senderId?: string;
  /** Message attributes in Lambda's shape (`stringValue`, `dataType`, …). Default none. */
  messageAttributes?: SQSMessageAttributes;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** A version-4-shaped UUID from a hash, so ids look like SQS's and stay deterministic. */
const uuidOf = (seed: string): string => {
  const bytes = sha256(seed).subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};

const millisOf = (value: Date | number, field: string): number => {
  const ms = value instanceof Date ? value.getTime() : value;
  if (!Number.isSafeInteger(ms) || ms < 0) throw new SqsEventBuildError(`${field} is not a valid time`);
  return ms;
};

/** The producer sends right after the fact happened; a body without a usable time gets the default. */
const sentAtOfBody = (body: string): number => {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && 'occurredAt' in parsed) {
      const at = Date.parse(String(parsed.occurredAt));
      if (Number.isFinite(at) && at >= 0) return at + 1000;
    }
  } catch {
    // A malformed body is a legitimate test input; it simply carries no time.
  }
  return defaultSentAt;
};

const lengthPrefixed = (bytes: Buffer): Buffer[] => {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return [length, bytes];
};

/**
 * SQS's MD5 of message attributes: names sorted; each name, data type and value length-prefixed
 * (4-byte big-endian), with transport byte 1 for String/Number and 2 for Binary.
 */
const md5OfMessageAttributes = (attributes: SQSMessageAttributes): string => {
  const parts: Buffer[] = [];
  for (const name of Object.keys(attributes).sort()) {
    const attribute = attributes[name];
    if (attribute === undefined) continue;
    parts.push(...lengthPrefixed(Buffer.from(name, 'utf8')));
    parts.push(...lengthPrefixed(Buffer.from(attribute.dataType, 'utf8')));
    if (attribute.dataType.startsWith('Binary')) {
      parts.push(Buffer.from([2]), ...lengthPrefixed(Buffer.from(attribute.binaryValue ?? '', 'base64')));
    } else {
      parts.push(Buffer.from([1]), ...lengthPrefixed(Buffer.from(attribute.stringValue ?? '', 'utf8')));
    }
  }
  return createHash('md5').update(Buffer.concat(parts)).digest('hex');
};

const checkFifoId = (value: string, field: string): void => {
  if (!fifoIdPattern.test(value))
    throw new SqsEventBuildError(`${field} must be 1 to 128 printable ASCII characters without spaces`);
};

/**
 * One SQS record as Lambda delivers it: from a FIFO queue with its group, deduplication id and
 * sequence number; from a standard queue without them.
 *
 * @example
 * const record = sqsRecordFactory({
 *   body: JSON.stringify(event),
 *   groupId: event.user.id,
 *   dedupId: event.id,
 *   queueArn: 'arn:aws:sqs:eu-west-1:123456789012:swr-access-sync-dev-access-changes.fifo',
 *   receiveCount: 2,
 * });
 */
const sqsRecordFactory = (input: SqsRecordInput): SQSRecord => {
  const arn = queueArnPattern.exec(input.queueArn);
  if (arn === null)
    throw new SqsEventBuildError(`queueArn is not the ARN of an SQS queue: ${input.queueArn}`);
  const region = arn[1] ?? '';
  const fifo = input.queueArn.endsWith('.fifo');
  if (fifo) {
    checkFifoId(input.groupId ?? '', 'groupId');
    checkFifoId(input.dedupId ?? '', 'dedupId');
  } else if (input.groupId !== undefined || input.dedupId !== undefined)
    throw new SqsEventBuildError('a standard queue has no message group or deduplication id');
  const receiveCount = input.receiveCount ?? 1;
  if (!Number.isSafeInteger(receiveCount) || receiveCount < 1)
    throw new SqsEventBuildError('receiveCount must be a whole number of at least 1');

  const messageId =
    input.messageId ?? uuidOf(`${input.queueArn}\n${input.groupId ?? ''}\n${input.dedupId ?? input.body}`);
  const sentAt = input.sentAt === undefined ? sentAtOfBody(input.body) : millisOf(input.sentAt, 'sentAt');
  const firstReceivedAt =
    input.firstReceivedAt === undefined ? sentAt + 25 : millisOf(input.firstReceivedAt, 'firstReceivedAt');
  // SQS sequence numbers are 20 digits and grow over time within a group.
  const sequenceNumber =
    input.sequenceNumber ??
    (BigInt(sentAt) * 10_000_000n + BigInt(sha256(messageId).readUInt32BE(0) % 10_000_000)).toString();
  // A receipt handle is new on every receive.
  const receiptHandle = `AQEB${sha256(`${messageId}\n${receiveCount}`).toString('base64')}`;
  const messageAttributes = input.messageAttributes ?? {};

  const record: SQSRecord = {
    messageId,
    receiptHandle,
    body: input.body,
    attributes: {
      ApproximateReceiveCount: String(receiveCount),
      SentTimestamp: String(sentAt),
      ...(fifo
        ? {
            SequenceNumber: sequenceNumber,
            MessageGroupId: input.groupId,
            MessageDeduplicationId: input.dedupId,
          }
        : {}),
      SenderId: input.senderId ?? defaultSenderId,
      ApproximateFirstReceiveTimestamp: String(firstReceivedAt),
    },
    messageAttributes,
    md5OfBody: createHash('md5').update(input.body, 'utf8').digest('hex'),
    eventSource: 'aws:sqs',
    eventSourceARN: input.queueArn,
    awsRegion: region,
  };
  if (Object.keys(messageAttributes).length > 0)
    record.md5OfMessageAttributes = md5OfMessageAttributes(messageAttributes);
  return record;
};

/**
 * Wraps records into the event one invocation receives. Refuses what Lambda never delivers: no
 * record, more than a batch may hold (10 from a FIFO queue, 10,000 from a standard one), records
 * of several queues, or one message twice.
 *
 * @example const event = sqsEventOf([sqsRecordFactory({ body, groupId, dedupId, queueArn })]);
 */
const sqsEventOf = (records: SQSRecord[]): SQSEvent => {
  if (records.length === 0) throw new SqsEventBuildError('an SQS event has at least one record');
  const fifo = records[0]?.eventSourceARN.endsWith('.fifo') === true;
  const limit = fifo ? maxFifoBatchSize : maxStandardBatchSize;
  if (records.length > limit)
    throw new SqsEventBuildError(
      `a ${fifo ? 'FIFO' : 'standard-queue'} batch has at most ${limit} records (got ${records.length})`,
    );
  const queues = new Set(records.map((record) => record.eventSourceARN));
  if (queues.size > 1) throw new SqsEventBuildError('every record of one event comes from the same queue');
  const ids = new Set(records.map((record) => record.messageId));
  if (ids.size < records.length) throw new SqsEventBuildError('a message appears at most once per event');
  return { Records: records };
};

export type { SqsRecordInput };
export { md5OfMessageAttributes, SqsEventBuildError, sqsEventOf, sqsRecordFactory };

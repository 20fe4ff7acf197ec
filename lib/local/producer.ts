/**
 * What the people system does in production, for the local stack and tests: send events (or any
 * raw body, valid or not) to the right queue — on a FIFO queue with the user as message group
 * (per-user order) and the event id as dedup id (a resend is dropped by SQS) — and wait until the
 * functions have drained the queues. Production producers use `lib/producer.ts`, which refuses
 * what the handlers would not parse; this one sends anything, as tests need.
 */
import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  GetQueueAttributesCommand,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { ErrorCodes, SyncError } from '../errors.ts';
import type { SourceQueueKey as QueueKey } from './sqs.ts';

/** A message already shaped for SQS; `queue` defaults to the queue of the parsed body. */
interface RawMessage {
  body: string;
  groupId: string;
  dedupId: string;
  queue?: QueueKey;
}

interface SendCounts {
  sent: number;
  accessChanges: number;
  offboarding: number;
  /** Entries that succeeded only on a retry. */
  retried: number;
}

interface SendOptions {
  /** Attempts per entry for server-side failures; default 3. */
  attempts?: number;
  /** Pause before a retry, doubled each time; default 100 ms. */
  backoffMs?: number;
}

interface FailedEntry {
  /** Position in the `events` array. */
  index: number;
  queue: QueueKey;
  dedupId: string;
  code: string;
  senderFault: boolean;
}

/** Some entries could not be sent; the others were. Carries no message body. */
class ProducerError extends SyncError {
  readonly failed: FailedEntry[];

  constructor(failed: FailedEntry[], options?: ErrorOptions) {
    const listed = failed
      .slice(0, 20)
      .map((entry) => `#${entry.index} ${entry.queue} dedup=${entry.dedupId} ${entry.code}`)
      .join('; ');
    const more = failed.length > 20 ? `; and ${failed.length - 20} more` : '';
    super(`${failed.length} message(s) could not be sent: ${listed}${more}`, {
      ...options,
      code: failed[0]?.code ?? ErrorCodes.network,
      retryable: failed.some((entry) => !entry.senderFault),
    });
    this.name = 'ProducerError';
    this.failed = failed;
  }
}

/** Messages of events that cannot be read share one group, so they keep their relative order. */
const unparseableGroup = 'unparseable';

/** SQS allows 1–128 characters of alphanumerics and punctuation in group and dedup ids. */
const sqsIdPattern = /^[\x21-\x7e]{1,128}$/;

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The id itself when SQS accepts it, else a stable hash of it (same id → same SQS id). */
const toSqsId = (value: string): string => (sqsIdPattern.test(value) ? value : sha256(value));

const asRecord = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;

const nonEmptyString = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

/**
 * The queue an event belongs on: offboarding has its own queue so that it is never stuck
 * behind a backlog of team changes.
 *
 * @example queueOf({ type: 'user.offboarded', ... }) // 'offboarding'
 */
const queueOf = (event: unknown): QueueKey =>
  asRecord(event)?.type === 'user.offboarded' ? 'offboarding' : 'accessChanges';

const parseBody = (body: string): unknown => {
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
};

/**
 * The SQS message for one event: group = user id, else user name; dedup = event id, else a
 * hash of the body. A string is taken as a ready body (possibly not JSON).
 *
 * @example toMessage({ id: 'e1', type: 'membership.added', user: { id: 'fb3f…' }, ... }).groupId // 'fb3f…'
 */
const toMessage = (event: unknown): Required<RawMessage> => {
  const body = typeof event === 'string' ? event : JSON.stringify(event);
  const parsed = typeof event === 'string' ? parseBody(event) : event;
  const record = asRecord(parsed);
  const user = asRecord(record?.user);
  const group = nonEmptyString(user?.id) ?? nonEmptyString(user?.name);
  const id = nonEmptyString(record?.id);
  return {
    body,
    groupId: group === undefined ? unparseableGroup : toSqsId(group),
    dedupId: id === undefined ? sha256(body) : toSqsId(id),
    queue: queueOf(parsed),
  };
};

const isRawMessage = (value: unknown): value is RawMessage => {
  const record = asRecord(value);
  return (
    record !== undefined &&
    typeof record.body === 'string' &&
    typeof record.groupId === 'string' &&
    typeof record.dedupId === 'string'
  );
};

const fromRaw = (raw: RawMessage): Required<RawMessage> => ({
  body: raw.body,
  groupId: raw.groupId,
  dedupId: raw.dedupId,
  queue: raw.queue ?? queueOf(parseBody(raw.body)),
});

interface Pending {
  index: number;
  message: Required<RawMessage>;
}

/** Batches of ≤ 10 consecutive messages for one queue: the send order is the given order. */
const chunksInOrder = (messages: Pending[]): Pending[][] => {
  const result: Pending[][] = [];
  for (const item of messages) {
    const last = result.at(-1);
    if (last !== undefined && last.length < 10 && last[0]?.message.queue === item.message.queue) {
      last.push(item);
    } else {
      result.push([item]);
    }
  }
  return result;
};

/**
 * Sends one chunk (≤ 10, one queue), retrying server-side `Failed[]` entries before the next
 * chunk goes out, so that a retried message is not overtaken by later ones of its group.
 */
const sendChunk = async (
  sqs: SQSClient,
  queueUrl: string,
  chunk: Pending[],
  attempts: number,
  backoffMs: number,
): Promise<{ sent: number; retried: number; failed: FailedEntry[] }> => {
  let pending = chunk;
  let sent = 0;
  let retried = 0;
  const failed: FailedEntry[] = [];
  for (let attempt = 1; pending.length > 0; attempt += 1) {
    // Group and dedup ids belong to FIFO queues; a standard queue refuses a dedup id.
    const fifo = queueUrl.endsWith('.fifo');
    const entries: SendMessageBatchRequestEntry[] = pending.map(({ index, message }) => ({
      Id: String(index),
      MessageBody: message.body,
      ...(fifo ? { MessageGroupId: message.groupId, MessageDeduplicationId: message.dedupId } : {}),
    }));
    const answer = await sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
    const succeeded = answer.Successful?.length ?? 0;
    sent += succeeded;
    if (attempt > 1) retried += succeeded;
    const byId = new Map(pending.map((item) => [String(item.index), item]));
    const again: Pending[] = [];
    for (const entry of answer.Failed ?? []) {
      const item = byId.get(entry.Id ?? '');
      if (item === undefined) continue;
      const senderFault = entry.SenderFault ?? false;
      // A sender fault (bad id, bad body) fails the same way every time: not worth a retry.
      if (!senderFault && attempt < attempts) {
        again.push(item);
      } else {
        failed.push({
          index: item.index,
          queue: item.message.queue,
          dedupId: item.message.dedupId,
          code: entry.Code ?? 'UNKNOWN',
          senderFault,
        });
      }
    }
    pending = again;
    if (pending.length > 0) {
      await delay(backoffMs * 2 ** (attempt - 1));
    }
  }
  return { sent, retried, failed };
};

/**
 * Sends events (objects, or raw bodies as strings, or ready `{ body, groupId, dedupId }`) with
 * SendMessageBatch in chunks of 10, in the given order. Throws a {@link ProducerError} listing
 * the entries that still failed after the retries; every other entry was sent.
 *
 * @example
 * const counts = await sendEvents(local.client, local.queues, [joinEvent, offboardEvent]);
 * // { sent: 2, accessChanges: 1, offboarding: 1, retried: 0 }
 */
const sendEvents = async (
  sqs: SQSClient,
  queues: Record<QueueKey, { url: string }>,
  events: readonly unknown[] | readonly RawMessage[],
  options: SendOptions = {},
): Promise<SendCounts> => {
  const attempts = Math.max(1, options.attempts ?? 3);
  const backoffMs = options.backoffMs ?? 100;
  const messages: Pending[] = events.map((event, index) => ({
    index,
    message: isRawMessage(event) ? fromRaw(event) : toMessage(event),
  }));
  const counts: SendCounts = { sent: 0, accessChanges: 0, offboarding: 0, retried: 0 };
  const failed: FailedEntry[] = [];
  for (const chunk of chunksInOrder(messages)) {
    const queue = chunk[0]!.message.queue;
    const result = await sendChunk(sqs, queues[queue].url, chunk, attempts, backoffMs);
    counts.sent += result.sent;
    counts[queue] += result.sent;
    counts.retried += result.retried;
    failed.push(...result.failed);
  }
  if (failed.length > 0) {
    throw new ProducerError(failed.sort((left, right) => left.index - right.index));
  }
  return counts;
};

interface QueueDepth {
  url: string;
  visible: number;
  notVisible: number;
  delayed: number;
}

interface DrainOptions {
  timeoutMs: number;
  /** Default 200 ms. */
  pollMs?: number;
  onProgress?: (depths: QueueDepth[]) => void;
}

const depthOf = async (sqs: SQSClient, url: string): Promise<QueueDepth> => {
  const answer = await sqs.send(
    new GetQueueAttributesCommand({
      QueueUrl: url,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    }),
  );
  const count = (name: string): number =>
    Number(answer.Attributes?.[name as keyof typeof answer.Attributes] ?? 0);
  return {
    url,
    visible: count('ApproximateNumberOfMessages'),
    notVisible: count('ApproximateNumberOfMessagesNotVisible'),
    delayed: count('ApproximateNumberOfMessagesDelayed'),
  };
};

/**
 * Resolves once every queue holds no message (visible, in flight or delayed), reading the queues
 * in order (list a queue after those that feed it); throws a
 * retryable `TIMEOUT` SyncError with the last depths after `timeoutMs`.
 *
 * @example
 * await waitForDrain(sqs, [queues.accessChanges.url, queues.offboarding.url], { timeoutMs: 30_000 });
 */
const waitForDrain = async (
  sqs: SQSClient,
  queueUrls: readonly string[],
  options: DrainOptions,
): Promise<void> => {
  const pollMs = options.pollMs ?? 200;
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    // In the order given, one after the other: a queue fed by another (the sweep queue, fed by
    // the offboarding handler before it deletes its message) is read after its feeder, so a
    // message moving from one to the other is seen in one of them.
    const depths: QueueDepth[] = [];
    for (const url of queueUrls) depths.push(await depthOf(sqs, url));
    options.onProgress?.(depths);
    if (depths.every((depth) => depth.visible + depth.notVisible + depth.delayed === 0)) {
      return;
    }
    if (Date.now() + pollMs > deadline) {
      const left = depths
        .filter((depth) => depth.visible + depth.notVisible + depth.delayed > 0)
        .map((depth) => `${depth.url}: ${depth.visible} visible, ${depth.notVisible} in flight`)
        .join('; ');
      throw new SyncError(`queues not drained after ${options.timeoutMs} ms: ${left}`, {
        code: ErrorCodes.timeout,
        retryable: true,
      });
    }
    await delay(pollMs);
  }
};

export type { DrainOptions, FailedEntry, QueueDepth, RawMessage, SendCounts, SendOptions };
export { ProducerError, queueOf, sendEvents, toMessage, waitForDrain };

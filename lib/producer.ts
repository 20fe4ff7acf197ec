/**
 * The one producer of our events: validates each event exactly as the queue handlers will parse
 * it, routes `user.offboarded` to the offboarding queue and everything else to access-changes, and
 * sends with SendMessageBatch. For a FIFO queue the message group is the user (IAM id, else name)
 * and the deduplication id is given by the caller (derived from the request) or the event id; a
 * standard queue gets neither. Which queue is FIFO comes from `config/queues.json` (`fifo`, true
 * when absent), the file serverless.yml reads too.
 *
 * Used by the intake function; the local stack and tools can use it as well.
 */
import { createHash } from 'node:crypto';
import type {
  SendMessageBatchCommandOutput,
  SendMessageBatchRequestEntry,
  SQSClient,
} from '@aws-sdk/client-sqs';
import queuesConfig from '../config/queues.json' with { type: 'json' };
import { parseEventBody } from './core/events.ts';
import type { PeopleEvent } from './domain.ts';
import { ErrorCodes, SyncError } from './errors.ts';

type QueueName = 'accessChanges' | 'offboarding';

interface QueueTarget {
  url: string;
  fifo: boolean;
}

type QueueTargets = Record<QueueName, QueueTarget>;

/** One event to send; `dedupId` defaults to the event id (FIFO queues only). */
interface OutgoingEvent {
  event: PeopleEvent;
  dedupId?: string;
}

interface SendResult {
  sent: number;
  accessChanges: number;
  offboarding: number;
}

interface SendOptions {
  /** Cuts the SQS calls short (a caller with a deadline, such as an Okta hook). */
  signal?: AbortSignal;
  now?: Date;
}

interface EventProducer {
  /** Sends every event or throws; the events a failure names may be retried as they are. */
  send(events: readonly OutgoingEvent[], options?: SendOptions): Promise<SendResult>;
}

/** An event the queue handlers would refuse: never sent. Permanent. */
class InvalidEventError extends SyncError {
  readonly problems: Array<{ index: number; message: string }>;

  constructor(problems: Array<{ index: number; message: string }>) {
    super(
      `${problems.length} event(s) are not valid: ${problems
        .slice(0, 5)
        .map((problem) => `#${problem.index}: ${problem.message.split('\n').join(' ')}`)
        .join('; ')}`,
      { code: ErrorCodes.schema, retryable: false },
    );
    this.name = 'InvalidEventError';
    this.problems = problems;
  }
}

/** Some messages could not be put on their queue. Carries no message body. */
class EnqueueError extends SyncError {
  readonly failed: Array<{ index: number; queue: QueueName; code: string }>;

  constructor(
    failed: Array<{ index: number; queue: QueueName; code: string; senderFault: boolean }>,
    options?: ErrorOptions,
  ) {
    super(
      `${failed.length} message(s) could not be sent: ${failed
        .slice(0, 10)
        .map((entry) => `#${entry.index} ${entry.queue} ${entry.code}`)
        .join('; ')}`,
      {
        ...options,
        code: failed[0]?.code ?? ErrorCodes.network,
        retryable: failed.some((entry) => !entry.senderFault),
      },
    );
    this.name = 'EnqueueError';
    this.failed = failed.map(({ index, queue, code }) => ({ index, queue, code }));
  }
}

/** SQS allows 1–128 characters of printable ASCII in group and dedup ids. */
const sqsIdPattern = /^[\x21-\x7e]{1,128}$/;

/** The value itself when SQS accepts it, else a stable hash of it. */
const toSqsId = (value: string): string =>
  sqsIdPattern.test(value) ? value : createHash('sha256').update(value).digest('hex');

/**
 * The queue an event belongs on: offboarding has its own queue so that it is never stuck behind
 * a backlog of team changes.
 *
 * @example queueOfEvent({ type: 'user.offboarded', … }) // 'offboarding'
 */
const queueOfEvent = (event: PeopleEvent): QueueName =>
  event.type === 'user.offboarded' ? 'offboarding' : 'accessChanges';

/**
 * Whether each queue is FIFO, as `config/queues.json` says (`fifo`; a missing flag means FIFO).
 *
 * @example fifoFlags() // { accessChanges: true, offboarding: true }
 */
const fifoFlags = (config: { queues: Record<QueueName, { fifo?: boolean }> } = queuesConfig) => ({
  accessChanges: config.queues.accessChanges.fifo ?? true,
  offboarding: config.queues.offboarding.fifo ?? true,
});

/**
 * Validates events as the handlers parse a message body (schema, size, clock skew). Returns the
 * events as parsed, or every problem with its position.
 *
 * @example const checked = validateEvents(JSON.parse(body)); if (!checked.ok) return badRequest(checked.problems);
 */
const validateEvents = (
  values: readonly unknown[],
  now: Date = new Date(),
):
  | { ok: true; events: PeopleEvent[] }
  | { ok: false; problems: Array<{ index: number; message: string }> } => {
  const events: PeopleEvent[] = [];
  const problems: Array<{ index: number; message: string }> = [];
  values.forEach((value, index) => {
    const parsed = parseEventBody(JSON.stringify(value) ?? '', now);
    if (parsed.ok) events.push(parsed.event);
    else problems.push({ index, message: parsed.error.message });
  });
  return problems.length === 0 ? { ok: true, events } : { ok: false, problems };
};

interface Pending {
  index: number;
  queue: QueueName;
  entry: SendMessageBatchRequestEntry;
}

/** Batches of ≤ 10 consecutive messages for one queue: the send order is the given order. */
const chunksInOrder = (messages: readonly Pending[]): Pending[][] => {
  const chunks: Pending[][] = [];
  for (const message of messages) {
    const last = chunks.at(-1);
    if (last !== undefined && last.length < 10 && last[0]?.queue === message.queue) last.push(message);
    else chunks.push([message]);
  }
  return chunks;
};

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

interface ProducerOptions {
  sqs: SQSClient;
  queues: QueueTargets;
  /** Attempts per entry for server-side `Failed[]` entries (default 3). */
  attempts?: number;
  /** Pause before a retry, doubled each time (default 50 ms). */
  backoffMs?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

const defaultSleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

/**
 * @example
 * const producer = createEventProducer({ sqs, queues: { accessChanges: { url, fifo: true }, offboarding: { url: url2, fifo: true } } });
 * await producer.send([{ event, dedupId: 'scim-3f2a…' }]);
 */
const createEventProducer = (options: ProducerOptions): EventProducer => {
  const attempts = Math.max(1, options.attempts ?? 3);
  const backoffMs = options.backoffMs ?? 50;
  const sleep = options.sleep ?? defaultSleep;

  const entryOf = (
    outgoing: OutgoingEvent,
    queue: QueueName,
    index: number,
  ): SendMessageBatchRequestEntry => {
    const { event } = outgoing;
    const base = { Id: String(index), MessageBody: JSON.stringify(event) };
    if (!options.queues[queue].fifo) return base;
    return {
      ...base,
      // The user's IAM id orders a user's messages; events of our own may name the user only.
      MessageGroupId: toSqsId(event.user.id ?? event.user.name ?? 'unknown-user'),
      MessageDeduplicationId: toSqsId(outgoing.dedupId ?? event.id),
    };
  };

  const sendChunk = async (chunk: Pending[], signal: AbortSignal | undefined) => {
    const queue = chunk[0]!.queue;
    let pending = chunk;
    const failed: Array<{ index: number; queue: QueueName; code: string; senderFault: boolean }> = [];
    // Loaded with the first send (the intake's cold start does not parse the SQS client).
    const { SendMessageBatchCommand } = await import('@aws-sdk/client-sqs');
    for (let attempt = 1; pending.length > 0; attempt += 1) {
      let answer: SendMessageBatchCommandOutput;
      try {
        answer = await options.sqs.send(
          new SendMessageBatchCommand({
            QueueUrl: options.queues[queue].url,
            Entries: pending.map((item) => item.entry),
          }),
          signal === undefined ? {} : { abortSignal: signal },
        );
      } catch (error) {
        // The whole call failed: none of this chunk is known to be sent.
        throw new EnqueueError(
          pending.map((item) => ({ index: item.index, queue, code: ErrorCodes.network, senderFault: false })),
          {
            cause: new SyncError(describe(error), {
              code: ErrorCodes.network,
              retryable: true,
              cause: error,
            }),
          },
        );
      }
      const byId = new Map(pending.map((item) => [item.entry.Id, item]));
      const again: Pending[] = [];
      for (const entry of answer.Failed ?? []) {
        const item = byId.get(entry.Id);
        if (item === undefined) continue;
        const senderFault = entry.SenderFault ?? false;
        // A sender fault (bad id, bad body) fails the same way every time: not worth a retry.
        if (!senderFault && attempt < attempts) again.push(item);
        else failed.push({ index: item.index, queue, code: entry.Code ?? 'UNKNOWN', senderFault });
      }
      pending = again;
      if (pending.length > 0) await sleep(backoffMs * 2 ** (attempt - 1), signal);
    }
    return failed;
  };

  return {
    async send(outgoing, sendOptions = {}) {
      const checked = validateEvents(
        outgoing.map((item) => item.event),
        sendOptions.now,
      );
      if (!checked.ok) throw new InvalidEventError(checked.problems);
      const messages: Pending[] = outgoing.map((item, index) => {
        const queue = queueOfEvent(item.event);
        return { index, queue, entry: entryOf(item, queue, index) };
      });
      const result: SendResult = { sent: 0, accessChanges: 0, offboarding: 0 };
      const failed: Array<{ index: number; queue: QueueName; code: string; senderFault: boolean }> = [];
      // In order, one chunk after another: a retried entry is never overtaken by a later one of its user.
      for (const chunk of chunksInOrder(messages)) {
        const chunkFailed = await sendChunk(chunk, sendOptions.signal);
        const sent = chunk.length - chunkFailed.length;
        result.sent += sent;
        result[chunk[0]!.queue] += sent;
        failed.push(...chunkFailed);
      }
      if (failed.length > 0) throw new EnqueueError(failed);
      return result;
    },
  };
};

export type {
  EventProducer,
  OutgoingEvent,
  ProducerOptions,
  QueueName,
  QueueTarget,
  QueueTargets,
  SendResult,
};
export {
  createEventProducer,
  EnqueueError,
  fifoFlags,
  InvalidEventError,
  queueOfEvent,
  toSqsId,
  validateEvents,
};

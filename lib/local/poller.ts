/**
 * A local stand-in for Lambda's SQS event source mapping, with ReportBatchItemFailures on:
 * `maximumConcurrency` pollers (each one function instance) receive batches, build the event
 * Lambda would build, invoke the handler with a Lambda-like context and a timeout, then delete
 * what succeeded and leave the rest for SQS to redeliver (and finally redrive to the DLQ).
 *
 * Batches are gathered as Lambda gathers them: on a FIFO queue one receive of up to 10; on a
 * standard queue, receives of 10 until the batch size is reached, the batching window (counted
 * from the first message) ends, or the event would pass Lambda's 6 MB invocation payload.
 *
 * Deviations from AWS, on purpose: `retryVisibilitySeconds` shortens the wait before a failed
 * message comes back; a timed-out handler is not frozen (it keeps running in the background
 * and its answer is ignored); `crash` lets the handler finish, then drops its answer, which is
 * what a process killed between the SWR calls and the delete looks like to SQS.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { Logger } from '@aws-lambda-powertools/logger';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  type MessageAttributeValue,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSMessageAttributes, SQSRecord } from 'aws-lambda';
import { ConfigError } from '../errors.ts';
import { createLambdaContext } from './lambda-context.ts';

// biome-ignore lint/suspicious/noConfusingVoidType: an async handler that returns nothing is Promise<void>, as in aws-lambda's SQSHandler
type SqsBatchHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

/** Where the poller reports its own trouble; a Powertools `Logger` fits. */
interface PollerLogger {
  warn(message: string, attributes: Record<string, unknown>): void;
  error(message: string, attributes: Record<string, unknown>): void;
}

interface InvocationReport {
  records: number;
  /** Records not deleted: left for SQS to redeliver. */
  failures: number;
  crashed: boolean;
  timedOut: boolean;
  ms: number;
}

interface PollerOptions {
  sqs: SQSClient;
  queue: { url: string; arn: string };
  functionName: string;
  /**
   * The function: one handler shared by every poller, or one per poller (`maximumConcurrency` of
   * them), as Lambda runs one instance per concurrent batch, each with its own connection pools.
   */
  handler: SqsBatchHandler | readonly SqsBatchHandler[];
  /** FIFO: 1–10; standard: 1–10,000 (above 10 only with a batching window of 1 s or more), as Lambda allows. */
  batchSize: number;
  /** A FIFO queue (default: the URL ends in `.fifo`). */
  fifo?: boolean;
  /** Standard queues only: how long a batch is gathered after its first message, 0–300 s (default 0). */
  maximumBatchingWindowSeconds?: number;
  maximumConcurrency: number;
  functionTimeoutMs: number;
  /** Local deviation: failed messages become visible after this; default: the queue's visibility timeout. */
  retryVisibilitySeconds?: number;
  /** Long poll per receive, 0–20; default 1 so that stop() is quick. */
  waitTimeSeconds?: number;
  /** Chaos: when true the invocation is treated as killed, nothing is deleted whatever the handler answers. */
  crash?: (event: SQSEvent) => boolean;
  onInvocation?: (report: InvocationReport) => void;
  logger?: PollerLogger;
  /** Pause after an error of the poller itself (receive, delete); default 250 ms. */
  errorPauseMs?: number;
}

interface PollerStats {
  invocations: number;
  received: number;
  deleted: number;
  failed: number;
  crashed: number;
  timedOut: number;
  /** Errors of the poller itself (SQS calls), each logged and retried. */
  pollerErrors: number;
}

interface Poller {
  /** Stops receiving, waits for in-flight invocations (bounded), resolves. */
  stop(): Promise<void>;
  stats(): PollerStats;
}

type HandlerOutcome =
  | { kind: 'answered'; value: unknown }
  | { kind: 'threw'; error: unknown }
  | { kind: 'timedOut' };

/** Which records to keep: every one, or those with these message ids. */
type Failures = { all: true; reason: string } | { all: false; ids: Set<string> };

const sqsBatchLimit = 10;
/** Lambda's limits for an SQS event source mapping. */
const standardBatchLimit = 10_000;
const maxBatchingWindowSeconds = 300;
/** Lambda's synchronous invocation payload limit: a batch stops growing before its event passes it. */
const maxPayloadBytes = 6 * 1024 * 1024;
/** While a window is open and the queue is empty, look again this often. */
const windowPollMs = 20;

const regionOfArn = (arn: string): string => arn.split(':')[3] || 'us-east-1';

const describeError = (error: unknown): Record<string, unknown> =>
  error instanceof Error
    ? { name: error.name, message: error.message, ...('code' in error ? { code: error.code } : {}) }
    : { message: String(error) };

const toLambdaAttribute = (value: MessageAttributeValue): SQSMessageAttributes[string] => ({
  ...(value.StringValue === undefined ? {} : { stringValue: value.StringValue }),
  ...(value.BinaryValue === undefined
    ? {}
    : { binaryValue: Buffer.from(value.BinaryValue).toString('base64') }),
  stringListValues: value.StringListValues ?? [],
  binaryListValues: (value.BinaryListValues ?? []).map((item) => Buffer.from(item).toString('base64')),
  dataType: value.DataType ?? 'String',
});

/**
 * The record Lambda builds from a received message: camel-cased top level, SQS system
 * attributes as strings, message attributes in Lambda's shape (binary as base64).
 */
const toSqsRecord = (message: Message, eventSourceARN: string): SQSRecord => {
  const attributes = message.Attributes ?? {};
  const messageAttributes: SQSMessageAttributes = {};
  for (const [name, value] of Object.entries(message.MessageAttributes ?? {})) {
    messageAttributes[name] = toLambdaAttribute(value);
  }
  return {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body: message.Body ?? '',
    attributes: {
      ApproximateReceiveCount: attributes.ApproximateReceiveCount ?? '1',
      SentTimestamp: attributes.SentTimestamp ?? '',
      SenderId: attributes.SenderId ?? '',
      ApproximateFirstReceiveTimestamp: attributes.ApproximateFirstReceiveTimestamp ?? '',
      ...(attributes.SequenceNumber === undefined ? {} : { SequenceNumber: attributes.SequenceNumber }),
      ...(attributes.MessageGroupId === undefined ? {} : { MessageGroupId: attributes.MessageGroupId }),
      ...(attributes.MessageDeduplicationId === undefined
        ? {}
        : { MessageDeduplicationId: attributes.MessageDeduplicationId }),
    },
    messageAttributes,
    md5OfBody: message.MD5OfBody ?? '',
    ...(message.MD5OfMessageAttributes === undefined
      ? {}
      : { md5OfMessageAttributes: message.MD5OfMessageAttributes }),
    eventSource: 'aws:sqs',
    eventSourceARN,
    awsRegion: regionOfArn(eventSourceARN),
  };
};

/**
 * Lambda's rule for a batch answer: nothing (or no list) means all succeeded; a list names the
 * failures; an answer that is not such an object, or an entry whose itemIdentifier is missing,
 * empty or not a message of the batch, fails the whole batch.
 */
const failuresOf = (answer: unknown, records: SQSRecord[]): Failures => {
  if (answer === undefined || answer === null) {
    return { all: false, ids: new Set() };
  }
  if (typeof answer !== 'object' || Array.isArray(answer)) {
    return { all: true, reason: 'the handler answer is not a batch response object' };
  }
  const list = (answer as { batchItemFailures?: unknown }).batchItemFailures;
  if (list === undefined || list === null) {
    return { all: false, ids: new Set() };
  }
  if (!Array.isArray(list)) {
    return { all: true, reason: 'batchItemFailures is not a list' };
  }
  const inBatch = new Set(records.map((record) => record.messageId));
  const ids = new Set<string>();
  for (const entry of list as unknown[]) {
    const id =
      typeof entry === 'object' && entry !== null
        ? (entry as { itemIdentifier?: unknown }).itemIdentifier
        : undefined;
    if (typeof id !== 'string' || id === '' || !inBatch.has(id)) {
      return { all: true, reason: 'a batchItemFailures entry names no message of the batch' };
    }
    ids.add(id);
  }
  return { all: false, ids };
};

const chunks = <T>(items: T[], size: number): T[][] => {
  const result: T[][] = [];
  for (let start = 0; start < items.length; start += size) {
    result.push(items.slice(start, start + size));
  }
  return result;
};

const validate = (options: PollerOptions): void => {
  const problems: string[] = [];
  const fifo = options.fifo ?? options.queue.url.endsWith('.fifo');
  const window = options.maximumBatchingWindowSeconds ?? 0;
  const limit = fifo ? sqsBatchLimit : standardBatchLimit;
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1 || options.batchSize > limit) {
    problems.push(
      `batchSize must be an integer from 1 to ${limit} for a ${fifo ? 'FIFO' : 'standard'} queue`,
    );
  }
  if (!Number.isFinite(window) || window < 0 || window > maxBatchingWindowSeconds)
    problems.push(`maximumBatchingWindowSeconds must be from 0 to ${maxBatchingWindowSeconds}`);
  if (fifo && window > 0) problems.push('a batching window is not supported for FIFO queues (as in Lambda)');
  if (Array.isArray(options.handler) && options.handler.length !== options.maximumConcurrency)
    problems.push('one handler per poller: as many handlers as maximumConcurrency');
  if (!fifo && options.batchSize > sqsBatchLimit && window < 1)
    problems.push('a batchSize above 10 needs maximumBatchingWindowSeconds of at least 1 (as in Lambda)');
  if (!Number.isInteger(options.maximumConcurrency) || options.maximumConcurrency < 1) {
    problems.push('maximumConcurrency must be a positive integer');
  }
  if (!(options.functionTimeoutMs > 0)) {
    problems.push('functionTimeoutMs must be positive');
  }
  const wait = options.waitTimeSeconds;
  if (wait !== undefined && (!Number.isInteger(wait) || wait < 0 || wait > 20)) {
    problems.push('waitTimeSeconds must be an integer from 0 to 20');
  }
  const retry = options.retryVisibilitySeconds;
  if (retry !== undefined && (!Number.isInteger(retry) || retry < 0 || retry > 43_200)) {
    problems.push('retryVisibilitySeconds must be an integer from 0 to 43200');
  }
  if (problems.length > 0) {
    throw new ConfigError(`invalid poller options for ${options.functionName}`, problems);
  }
};

/**
 * Starts polling `queue` and invoking `handler` like Lambda's event source mapping.
 *
 * @example
 * const poller = startPoller({
 *   sqs: local.client, queue: local.queues.accessChanges, functionName: 'sync', handler,
 *   batchSize: 10, maximumConcurrency: 5, functionTimeoutMs: 60_000, retryVisibilitySeconds: 1,
 * });
 * await waitForDrain(local.client, [local.queues.accessChanges.url], { timeoutMs: 30_000 });
 * await poller.stop();
 */
const startPoller = (options: PollerOptions): Poller => {
  validate(options);
  const { sqs, queue, functionName, batchSize, functionTimeoutMs } = options;
  const handlers = Array.isArray(options.handler) ? options.handler : [options.handler as SqsBatchHandler];
  const waitTimeSeconds = options.waitTimeSeconds ?? 1;
  const errorPauseMs = options.errorPauseMs ?? 250;
  const logger: PollerLogger = options.logger ?? new Logger({ serviceName: 'local-poller' });
  const stats: PollerStats = {
    invocations: 0,
    received: 0,
    deleted: 0,
    failed: 0,
    crashed: 0,
    timedOut: 0,
    pollerErrors: 0,
  };
  const stopping = new AbortController();
  /** Handlers that outlived their timeout: stop() gives them one more timeout to settle. */
  const abandoned = new Set<Promise<unknown>>();

  const pause = async (ms: number): Promise<void> => {
    await delay(ms, undefined, { signal: stopping.signal }).catch(() => undefined);
  };

  const windowMs = (options.maximumBatchingWindowSeconds ?? 0) * 1000;

  const receive = async (max: number, wait: number): Promise<Message[]> => {
    const answer = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queue.url,
        MaxNumberOfMessages: Math.min(sqsBatchLimit, max),
        WaitTimeSeconds: wait,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    return answer.Messages ?? [];
  };

  /** The size a message adds to the invocation event (its record as JSON, and a comma). */
  const recordBytes = (message: Message): number =>
    Buffer.byteLength(JSON.stringify(toSqsRecord(message, queue.arn))) + 1;

  /** One batch as Lambda gathers it; empty when the queue stayed empty for a long poll. */
  const gather = async (): Promise<Message[]> => {
    const batch = await receive(batchSize, waitTimeSeconds);
    if (batch.length === 0 || windowMs === 0) return batch;
    const closesAt = performance.now() + windowMs;
    let bytes = batch.reduce((sum, message) => sum + recordBytes(message), 0);
    while (batch.length < batchSize && performance.now() < closesAt && !stopping.signal.aborted) {
      const more = await receive(batchSize - batch.length, 0);
      for (const message of more) {
        const size = recordBytes(message);
        if (bytes + size > maxPayloadBytes) {
          // Lambda leaves it for the next batch: give it back at once.
          await releaseRecords([toSqsRecord(message, queue.arn)], 0);
          return batch;
        }
        bytes += size;
        batch.push(message);
      }
      if (more.length === 0) await pause(Math.min(windowPollMs, Math.max(0, closesAt - performance.now())));
    }
    return batch;
  };

  const runHandler = async (event: SQSEvent, handler: SqsBatchHandler): Promise<HandlerOutcome> => {
    const context = createLambdaContext(functionName, functionTimeoutMs, { region: regionOfArn(queue.arn) });
    const running = Promise.resolve()
      .then(() => handler(event, context))
      .then(
        (value): HandlerOutcome => ({ kind: 'answered', value }),
        (error: unknown): HandlerOutcome => ({ kind: 'threw', error }),
      );
    const timer = new AbortController();
    const timeout = delay(functionTimeoutMs, { kind: 'timedOut' } as const, { signal: timer.signal }).catch(
      () => ({ kind: 'timedOut' }) as const,
    );
    const outcome = await Promise.race([running, timeout]);
    timer.abort();
    if (outcome.kind === 'timedOut') {
      abandoned.add(running);
      void running.finally(() => abandoned.delete(running));
    }
    return outcome;
  };

  const deleteRecords = async (records: SQSRecord[]): Promise<void> => {
    for (const chunk of chunks(records, sqsBatchLimit)) {
      const answer = await sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queue.url,
          Entries: chunk.map((record, index) => ({ Id: String(index), ReceiptHandle: record.receiptHandle })),
        }),
      );
      stats.deleted += answer.Successful?.length ?? 0;
      for (const failed of answer.Failed ?? []) {
        const record = chunk[Number(failed.Id)];
        // The message stays in the queue and comes back: processed twice, which the handlers tolerate.
        logger.warn('DeleteMessageBatch left a processed message in the queue', {
          functionName,
          messageId: record?.messageId,
          code: failed.Code,
          reason: failed.Message,
        });
      }
    }
  };

  const releaseRecords = async (records: SQSRecord[], seconds: number): Promise<void> => {
    for (const chunk of chunks(records, sqsBatchLimit)) {
      const answer = await sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: queue.url,
          Entries: chunk.map((record, index) => ({
            Id: String(index),
            ReceiptHandle: record.receiptHandle,
            VisibilityTimeout: seconds,
          })),
        }),
      );
      for (const failed of answer.Failed ?? []) {
        logger.warn(
          'ChangeMessageVisibilityBatch failed: the message returns after the queue visibility timeout',
          {
            functionName,
            messageId: chunk[Number(failed.Id)]?.messageId,
            code: failed.Code,
            reason: failed.Message,
          },
        );
      }
    }
  };

  const invoke = async (messages: Message[], handler: SqsBatchHandler): Promise<void> => {
    const startedAt = performance.now();
    const records = messages.map((message) => toSqsRecord(message, queue.arn));
    const event: SQSEvent = { Records: records };
    stats.invocations += 1;
    stats.received += records.length;
    const crashed = options.crash?.(event) ?? false;
    const outcome = await runHandler(event, handler);
    let failures: Failures;
    if (crashed) {
      failures = { all: true, reason: 'crash injected' };
    } else if (outcome.kind === 'answered') {
      failures = failuresOf(outcome.value, records);
    } else if (outcome.kind === 'threw') {
      failures = { all: true, reason: 'the handler threw' };
      logger.warn('handler threw: the whole batch will be retried', {
        functionName,
        records: records.length,
        error: describeError(outcome.error),
      });
    } else {
      failures = { all: true, reason: 'the handler timed out' };
      logger.warn('handler timed out: the whole batch will be retried', { functionName, functionTimeoutMs });
    }
    if (failures.all && outcome.kind === 'answered' && !crashed) {
      logger.warn('invalid batch response: the whole batch will be retried', {
        functionName,
        reason: failures.reason,
      });
    }
    const failed = failures.all ? records : records.filter((record) => failures.ids.has(record.messageId));
    const succeeded = failures.all ? [] : records.filter((record) => !failures.ids.has(record.messageId));
    stats.failed += failed.length;
    if (crashed) stats.crashed += 1;
    if (outcome.kind === 'timedOut') stats.timedOut += 1;
    await deleteRecords(succeeded);
    if (failed.length > 0 && options.retryVisibilitySeconds !== undefined) {
      await releaseRecords(failed, options.retryVisibilitySeconds);
    }
    options.onInvocation?.({
      records: records.length,
      failures: failed.length,
      crashed,
      timedOut: outcome.kind === 'timedOut',
      ms: performance.now() - startedAt,
    });
  };

  const pollLoop = async (worker: number): Promise<void> => {
    const handler = handlers[worker % handlers.length] as SqsBatchHandler;
    while (!stopping.signal.aborted) {
      try {
        const messages = await gather();
        // Received messages are invoked even while stopping: dropping them would hide them until
        // their visibility timeout ends.
        if (messages.length > 0) {
          await invoke(messages, handler);
        }
      } catch (error) {
        stats.pollerErrors += 1;
        logger.error('poller error: retrying after a pause', {
          functionName,
          worker,
          error: describeError(error),
        });
        await pause(errorPauseMs);
      }
    }
  };

  const loops = Array.from({ length: options.maximumConcurrency }, (_, worker) => pollLoop(worker));

  const stop = async (): Promise<void> => {
    stopping.abort();
    await Promise.all(loops);
    if (abandoned.size > 0) {
      // A timed-out handler cannot be killed in-process; give it one more timeout, then move on.
      const settled = Promise.allSettled([...abandoned]).then(() => true);
      const timer = new AbortController();
      const gaveUp = delay(functionTimeoutMs, false, { signal: timer.signal }).catch(() => false);
      const done = await Promise.race([settled, gaveUp]);
      timer.abort();
      if (!done) {
        logger.warn('timed-out handlers still running after stop', { functionName, count: abandoned.size });
      }
    }
  };

  return { stop, stats: () => ({ ...stats }) };
};

export type { InvocationReport, Poller, PollerLogger, PollerOptions, PollerStats, SqsBatchHandler };
export { failuresOf, startPoller, toSqsRecord };

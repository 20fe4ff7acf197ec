import { createHook } from 'node:async_hooks';
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { PurgeQueueCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Poller, type PollerLogger, type PollerOptions, startPoller } from '../../lib/local/poller.ts';
import { sendEvents } from '../../lib/local/producer.ts';
import { type LocalSqs, startLocalSqs } from '../../lib/local/sqs.ts';

let local: LocalSqs;
let poller: Poller | undefined;

beforeAll(async () => {
  local = await startLocalSqs({ visibilityTimeoutSeconds: 2 });
});

afterAll(async () => {
  await local?.stop();
});

beforeEach(async () => {
  for (const queue of Object.values(local.queues)) {
    await local.client.send(new PurgeQueueCommand({ QueueUrl: queue.url }));
    await local.client.send(new PurgeQueueCommand({ QueueUrl: queue.dlqUrl }));
  }
});

afterEach(async () => {
  await poller?.stop();
  poller = undefined;
});

/**
 * One message per user on the FIFO queue, so that fauxqs (one message per group per receive)
 * batches them together.
 */
const messagesFactory = (bodies: string[]) =>
  bodies.map((body) => ({
    body,
    groupId: `user-${randomUUID()}`,
    dedupId: randomUUID(),
    queue: 'offboarding' as const,
  }));

interface Seen {
  body: string;
  receiveCount: number;
  messageId: string;
}

/** A handler that records what it saw and answers what `answer` decides. */
const recordingHandler = (
  answer: (event: SQSEvent, call: number) => Promise<SQSBatchResponse | undefined>,
) => {
  const seen: Seen[] = [];
  const contexts: Context[] = [];
  let calls = 0;
  const handler = async (event: SQSEvent, context: Context) => {
    calls += 1;
    contexts.push(context);
    for (const record of event.Records) {
      seen.push({
        body: record.body,
        receiveCount: Number(record.attributes.ApproximateReceiveCount),
        messageId: record.messageId,
      });
    }
    return answer(event, calls);
  };
  return { handler, seen, contexts, calls: () => calls };
};

const failBodies =
  (...bodies: string[]) =>
  (record: SQSRecord): boolean =>
    bodies.includes(record.body);

const itemFailures = (event: SQSEvent, fails: (record: SQSRecord) => boolean): SQSBatchResponse => ({
  batchItemFailures: event.Records.filter(fails).map((record) => ({ itemIdentifier: record.messageId })),
});

const capturingLogger = () => {
  const lines: { level: string; message: string; attributes: Record<string, unknown> }[] = [];
  const logger: PollerLogger = {
    warn: (message, attributes) => lines.push({ level: 'warn', message, attributes }),
    error: (message, attributes) => lines.push({ level: 'error', message, attributes }),
  };
  return { logger, lines };
};

const start = (overrides: Partial<PollerOptions> & Pick<PollerOptions, 'handler'>): Poller => {
  poller = startPoller({
    sqs: local.client,
    queue: local.queues.offboarding,
    functionName: 'offboard',
    batchSize: 10,
    maximumConcurrency: 2,
    functionTimeoutMs: 2_000,
    retryVisibilitySeconds: 0,
    waitTimeSeconds: 1,
    logger: capturingLogger().logger,
    ...overrides,
  });
  return poller;
};

const waitUntil = async (condition: () => boolean, timeoutMs = 10_000): Promise<void> => {
  for (const deadline = Date.now() + timeoutMs; !condition(); ) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await delay(20);
  }
};

const receiveAll = async (url: string) => {
  const answer = await local.client.send(
    new ReceiveMessageCommand({
      QueueUrl: url,
      MaxNumberOfMessages: 10,
      MessageSystemAttributeNames: ['All'],
    }),
  );
  return answer.Messages ?? [];
};

/** Timers that `module` creates from now on and that are still pending when `alive()` is asked. */
const trackTimers = (module: string) => {
  const created = new Set<{ _destroyed?: boolean; _idleTimeout?: number }>();
  const hook = createHook({
    init: (_id, type, _trigger, resource) => {
      if (type !== 'Timeout') return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 30;
      const stack = new Error('timer created').stack ?? '';
      Error.stackTraceLimit = limit;
      if (stack.includes(module)) created.add(resource as { _destroyed?: boolean });
    },
  }).enable();
  return {
    created: (): number => created.size,
    alive: (): number[] => {
      hook.disable();
      return [...created]
        .filter((timer) => timer._destroyed !== true)
        .map((timer) => timer._idleTimeout ?? -1);
    },
  };
};

const countOf = (seen: Seen[], body: string): number => seen.filter((item) => item.body === body).length;

describe('startPoller', () => {
  it('builds the SQS event exactly like Lambda', async () => {
    // Prepare
    const { handler, seen, contexts } = recordingHandler(async () => undefined);
    const events: SQSEvent[] = [];
    await local.client.send(
      new SendMessageCommand({
        QueueUrl: local.queues.offboarding.url,
        MessageBody: '{"hello":"world"}',
        MessageGroupId: 'user-1',
        MessageDeduplicationId: 'dedup-1',
        MessageAttributes: {
          trace: { DataType: 'String', StringValue: 'abc' },
          blob: { DataType: 'Binary', BinaryValue: Buffer.from('bin') },
        },
      }),
    );

    // Act
    start({
      handler: async (event, context) => {
        events.push(event);
        return handler(event, context);
      },
      functionTimeoutMs: 5_000,
    });
    await waitUntil(() => seen.length === 1);

    // Assess
    const record = events[0]?.Records[0];
    expect(record).toEqual({
      messageId: expect.any(String),
      receiptHandle: expect.any(String),
      body: '{"hello":"world"}',
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: expect.stringMatching(/^\d+$/),
        SenderId: expect.any(String),
        ApproximateFirstReceiveTimestamp: expect.stringMatching(/^\d+$/),
        MessageGroupId: 'user-1',
        MessageDeduplicationId: 'dedup-1',
        SequenceNumber: expect.stringMatching(/^\d+$/),
      },
      messageAttributes: {
        trace: { stringValue: 'abc', stringListValues: [], binaryListValues: [], dataType: 'String' },
        blob: {
          binaryValue: Buffer.from('bin').toString('base64'),
          stringListValues: [],
          binaryListValues: [],
          dataType: 'Binary',
        },
      },
      md5OfBody: createHash('md5').update('{"hello":"world"}').digest('hex'),
      md5OfMessageAttributes: expect.any(String),
      eventSource: 'aws:sqs',
      eventSourceARN: local.queues.offboarding.arn,
      awsRegion: 'us-east-1',
    });
    expect(contexts[0]).toMatchObject({ functionName: 'offboard', awsRequestId: expect.any(String) });
    expect(contexts[0]?.getRemainingTimeInMillis()).toBeLessThanOrEqual(5_000);
    expect(contexts[0]?.getRemainingTimeInMillis()).toBeGreaterThan(0);
  });

  it('deletes the records not listed and redelivers only the listed one', async () => {
    // Prepare
    const fails = failBodies('bad');
    const { handler, seen } = recordingHandler(async (event) => itemFailures(event, fails));
    await sendEvents(local.client, local.queues, messagesFactory(['ok-1', 'bad', 'ok-2']));

    // Act
    const running = start({ handler });
    await waitUntil(() => countOf(seen, 'bad') >= 3);
    await running.stop();

    // Assess
    expect(countOf(seen, 'ok-1')).toBe(1);
    expect(countOf(seen, 'ok-2')).toBe(1);
    const badCounts = seen.filter((item) => item.body === 'bad').map((item) => item.receiveCount);
    expect(badCounts.slice(0, 3)).toEqual([1, 2, 3]);
    expect(running.stats()).toMatchObject({ deleted: 2 });
  });

  it.each([
    { name: 'resolves nothing', answer: async () => undefined },
    { name: 'resolves an empty list', answer: async () => ({ batchItemFailures: [] }) },
  ])('deletes the whole batch when the handler $name', async ({ answer }) => {
    // Prepare
    const { handler, seen } = recordingHandler(answer);
    await sendEvents(local.client, local.queues, messagesFactory(['a', 'b', 'c']));

    // Act
    const running = start({ handler });
    await waitUntil(() => running.stats().deleted === 3);
    await running.stop();

    // Assess
    expect(seen.map((item) => item.body).sort()).toEqual(['a', 'b', 'c']);
    expect(running.stats()).toMatchObject({ received: 3, deleted: 3, failed: 0 });
    expect(await receiveAll(local.queues.offboarding.url)).toEqual([]);
  });

  it.each([
    {
      name: 'an empty itemIdentifier',
      answer: async () => ({ batchItemFailures: [{ itemIdentifier: '' }] }),
    },
    {
      name: 'an itemIdentifier of no message in the batch',
      answer: async () => ({ batchItemFailures: [{ itemIdentifier: 'not-in-this-batch' }] }),
    },
    {
      name: 'an entry without itemIdentifier',
      answer: async () => ({ batchItemFailures: [{ id: 'x' }] }) as unknown as SQSBatchResponse,
    },
    {
      name: 'a batchItemFailures that is not a list',
      answer: async () => ({ batchItemFailures: 'all' }) as unknown as SQSBatchResponse,
    },
    {
      name: 'throws',
      answer: async (): Promise<SQSBatchResponse> => {
        throw new Error('boom');
      },
    },
  ])('retries the whole batch when the handler answers $name', async ({ answer }) => {
    // Prepare: fail the first invocation only, then succeed
    const { handler, seen } = recordingHandler(async (_event, call) => (call === 1 ? answer() : undefined));
    await sendEvents(local.client, local.queues, messagesFactory(['a', 'b']));

    // Act
    const running = start({ handler, maximumConcurrency: 1 });
    await waitUntil(() => running.stats().deleted === 2);
    await running.stop();

    // Assess
    expect(seen.map((item) => `${item.body}:${item.receiveCount}`).sort()).toEqual([
      'a:1',
      'a:2',
      'b:1',
      'b:2',
    ]);
    expect(running.stats()).toMatchObject({ invocations: 2, failed: 2, deleted: 2 });
  });

  it('lets a record failing every time land in the DLQ after maxReceiveCount, deleting the others', async () => {
    // Prepare
    const refs = local.queues.offboarding;
    const fails = failBodies('poison');
    const { handler, seen } = recordingHandler(async (event) => itemFailures(event, fails));
    await sendEvents(local.client, local.queues, messagesFactory(['fine', 'poison']));

    // Act
    const running = start({ handler });
    const dead: string[] = [];
    for (let round = 0; round < 50 && dead.length === 0; round += 1) {
      const messages = await receiveAll(refs.dlqUrl);
      dead.push(...messages.map((message) => message.Body ?? ''));
      if (dead.length === 0) await delay(100);
    }
    await running.stop();

    // Assess
    expect(dead).toEqual(['poison']);
    expect(countOf(seen, 'poison')).toBe(refs.maxReceiveCount);
    expect(countOf(seen, 'fine')).toBe(1);
    expect(await receiveAll(refs.url)).toEqual([]);
  });

  it('deletes nothing from a crashed invocation, even though the handler finished', async () => {
    // Prepare
    let crashes = 0;
    const { handler, seen } = recordingHandler(async () => undefined);
    const reports: { crashed: boolean; failures: number }[] = [];
    await sendEvents(local.client, local.queues, messagesFactory(['a', 'b']));

    // Act
    const running = start({
      handler,
      maximumConcurrency: 1,
      crash: () => {
        crashes += 1;
        return crashes === 1;
      },
      onInvocation: (report) => reports.push(report),
    });
    await waitUntil(() => running.stats().deleted === 2);
    await running.stop();

    // Assess
    expect(seen.map((item) => `${item.body}:${item.receiveCount}`).sort()).toEqual([
      'a:1',
      'a:2',
      'b:1',
      'b:2',
    ]);
    expect(reports[0]).toMatchObject({ records: 2, failures: 2, crashed: true, timedOut: false });
    expect(running.stats()).toMatchObject({ crashed: 1, deleted: 2 });
  });

  it('deletes nothing when the handler outlives the function timeout', async () => {
    // Prepare
    const { handler, seen, contexts } = recordingHandler(async (_event, call) => {
      if (call === 1) await delay(400);
      return undefined;
    });
    const reports: { timedOut: boolean; failures: number }[] = [];
    await sendEvents(local.client, local.queues, messagesFactory(['slow']));

    // Act
    const running = start({
      handler,
      maximumConcurrency: 1,
      functionTimeoutMs: 100,
      onInvocation: (report) => reports.push(report),
    });
    await waitUntil(() => running.stats().deleted === 1);
    await running.stop();

    // Assess
    expect(seen.map((item) => item.receiveCount)).toEqual([1, 2]);
    expect(reports[0]).toMatchObject({ timedOut: true, failures: 1 });
    expect(running.stats()).toMatchObject({ timedOut: 1, deleted: 1 });
    expect(contexts[1]?.getRemainingTimeInMillis()).toBeLessThanOrEqual(100);
  });

  it('leaves a failed message to the queue visibility timeout when no retryVisibilitySeconds is set', async () => {
    // Prepare
    const { handler, seen } = recordingHandler(async (event) => itemFailures(event, () => true));
    await sendEvents(local.client, local.queues, messagesFactory(['later']));

    // Act
    const running = start({ handler, retryVisibilitySeconds: undefined });
    await waitUntil(() => seen.length === 1);
    await delay(500);
    const beforeTimeout = seen.length;
    await running.stop();

    // Assess: visibility timeout is 2 s, so no redelivery yet
    expect(beforeTimeout).toBe(1);
  });

  it('logs its own errors and keeps polling instead of crashing', async () => {
    // Prepare
    const { logger, lines } = capturingLogger();
    const { handler } = recordingHandler(async () => undefined);

    // Act
    const running = start({
      handler,
      maximumConcurrency: 1,
      queue: { url: `${local.queues.offboarding.url}-missing`, arn: local.queues.offboarding.arn },
      logger,
      errorPauseMs: 20,
    });
    await waitUntil(() => running.stats().pollerErrors >= 2);
    await running.stop();

    // Assess
    expect(lines[0]).toMatchObject({ level: 'error', attributes: { functionName: 'offboard', worker: 0 } });
  });

  it('stop() cuts short the pause after an error', async () => {
    // Prepare
    const timers = trackTimers('lib/local/poller.ts');
    const { handler } = recordingHandler(async () => undefined);
    const running = start({
      handler,
      maximumConcurrency: 1,
      queue: { url: `${local.queues.offboarding.url}-missing`, arn: local.queues.offboarding.arn },
      errorPauseMs: 60_000,
    });
    await waitUntil(() => running.stats().pollerErrors === 1);

    // Act
    const outcome = await Promise.race([running.stop().then(() => 'stopped'), delay(5_000, 'still paused')]);

    // Assess
    expect(outcome).toBe('stopped');
    expect(timers.alive()).toEqual([]);
  });

  it('refuses options Lambda would refuse', () => {
    // Act
    const starting = () =>
      startPoller({
        sqs: local.client,
        queue: local.queues.offboarding,
        functionName: 'sync',
        handler: async () => undefined,
        batchSize: 11,
        maximumConcurrency: 0,
        functionTimeoutMs: 1_000,
      });

    // Assess
    expect(starting).toThrow(/batchSize[\s\S]*maximumConcurrency/);
  });

  it.each([
    [
      'a batch above 10 on a FIFO queue',
      { batchSize: 11 },
      'offboarding',
      /batchSize must be an integer from 1 to 10/,
    ],
    [
      'a batching window on a FIFO queue',
      { maximumBatchingWindowSeconds: 1 },
      'offboarding',
      /not supported for FIFO/,
    ],
    ['a batch above 10 without a window', { batchSize: 100 }, 'accessChanges', /at least 1/],
    [
      'a batch above 10,000',
      { batchSize: 10_001, maximumBatchingWindowSeconds: 1 },
      'accessChanges',
      /1 to 10000/,
    ],
    [
      'a window above 300 s',
      { batchSize: 100, maximumBatchingWindowSeconds: 301 },
      'accessChanges',
      /0 to 300/,
    ],
  ] as const)('refuses %s, as Lambda does', (_name, overrides, queue, message) => {
    // Act
    const starting = () =>
      startPoller({
        sqs: local.client,
        queue: local.queues[queue],
        functionName: 'f',
        handler: async () => undefined,
        batchSize: 10,
        maximumConcurrency: 1,
        functionTimeoutMs: 1_000,
        ...overrides,
      });

    // Assess
    expect(starting).toThrow(message);
  });

  it('gathers a standard-queue batch through its window: 25 messages in one invocation, not three', async () => {
    // Prepare
    const { handler, seen } = recordingHandler(async () => undefined);
    const sizes: number[] = [];
    const bodies = Array.from({ length: 25 }, (_, index) => `windowed-${index}`);
    await sendEvents(
      local.client,
      local.queues,
      bodies.map((body) => ({
        body,
        groupId: 'unused',
        dedupId: randomUUID(),
        queue: 'accessChanges' as const,
      })),
    );

    // Act
    start({
      queue: local.queues.accessChanges,
      functionName: 'sync',
      batchSize: 100,
      maximumBatchingWindowSeconds: 1,
      maximumConcurrency: 1,
      handler: async (event, context) => {
        sizes.push(event.Records.length);
        return handler(event, context);
      },
    });
    await waitUntil(() => seen.length === 25);

    // Assess
    expect(sizes).toEqual([25]);
    expect(seen.map((item) => item.body).sort()).toEqual([...bodies].sort());
  });

  it('runs one function instance per poller when given one handler each', async () => {
    // Prepare
    const used: number[] = [];
    const instances = [0, 1].map((instance) => async () => {
      used.push(instance);
      return undefined;
    });
    await sendEvents(local.client, local.queues, messagesFactory(['i-1', 'i-2', 'i-3', 'i-4']));

    // Act
    start({ handler: instances, maximumConcurrency: 2, batchSize: 1 });
    await waitUntil(() => used.length === 4);

    // Assess
    expect(new Set(used)).toEqual(new Set([0, 1]));
  });

  it('stop() waits for the in-flight invocation and leaves no timer behind', async () => {
    // Prepare
    const timers = trackTimers('lib/local/poller.ts');
    let finished = false;
    const { handler, seen } = recordingHandler(async () => {
      await delay(200);
      finished = true;
      return undefined;
    });
    await sendEvents(local.client, local.queues, messagesFactory(['in-flight']));
    const running = start({ handler, maximumConcurrency: 3, errorPauseMs: 60_000 });
    await waitUntil(() => seen.length === 1);

    // Act
    await running.stop();

    // Assess
    expect(finished).toBe(true);
    expect(running.stats()).toMatchObject({ deleted: 1 });
    expect(timers.created()).toBeGreaterThan(0);
    expect(timers.alive()).toEqual([]);
  });
});

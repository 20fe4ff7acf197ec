import { randomUUID } from 'node:crypto';
import { CreateTableCommand, DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SyncError } from '../../lib/errors.ts';
import { startLocalDynamo } from '../../lib/local/dynamo.ts';
import { ProducerError, queueOf, sendEvents, toMessage, waitForDrain } from '../../lib/local/producer.ts';
import { type LocalSqs, startLocalSqs } from '../../lib/local/sqs.ts';

const visibilityTimeoutSeconds = 2;

let local: LocalSqs;

beforeAll(async () => {
  local = await startLocalSqs({ visibilityTimeoutSeconds });
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

const userId = (): string => randomUUID().replaceAll('-', '');

/** A people event as the producer sends it; every call gets a fresh id. */
const eventFactory = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: `hr-${randomUUID()}`,
  type: 'membership.added',
  occurredAt: '2026-11-20T10:00:00Z',
  source: 'workday',
  user: { id: userId(), name: 'user01' },
  team: 'platform',
  ...overrides,
});

const receive = async (url: string, max = 10): Promise<Message[]> => {
  const answer = await local.client.send(
    new ReceiveMessageCommand({
      QueueUrl: url,
      MaxNumberOfMessages: max,
      WaitTimeSeconds: 0,
      MessageSystemAttributeNames: ['All'],
    }),
  );
  return answer.Messages ?? [];
};

const send = (url: string, body: string, groupId: string, dedupId: string = randomUUID()) =>
  local.client.send(
    new SendMessageCommand({
      QueueUrl: url,
      MessageBody: body,
      MessageGroupId: groupId,
      MessageDeduplicationId: dedupId,
    }),
  );

const attributesOf = async (url: string): Promise<Record<string, string>> => {
  const answer = await local.client.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['All'] }),
  );
  return answer.Attributes ?? {};
};

describe('startLocalSqs', () => {
  it('listens on 127.0.0.1 only', () => {
    expect(new URL(local.endpoint).hostname).toBe('127.0.0.1');
  });

  it('creates access-changes as a standard queue, read in large batches through a window, with a standard DLQ', async () => {
    // Prepare
    const refs = local.queues.accessChanges;

    // Act
    const source = await attributesOf(refs.url);
    const dlq = await attributesOf(refs.dlqUrl);

    // Assess
    expect(refs).toMatchObject({ name: 'access-changes', dlqName: 'access-changes-dlq', fifo: false });
    expect(source.FifoQueue).toBeUndefined();
    expect(dlq.FifoQueue).toBeUndefined();
    expect(source).toMatchObject({ VisibilityTimeout: String(visibilityTimeoutSeconds), QueueArn: refs.arn });
    expect(JSON.parse(source.RedrivePolicy ?? '{}')).toEqual({
      deadLetterTargetArn: refs.dlqArn,
      maxReceiveCount: '5',
    });
    expect(refs).toMatchObject({
      maxReceiveCount: 5,
      batchSize: 1000,
      maximumBatchingWindowSeconds: 1,
      maximumConcurrency: 2,
    });
  });

  describe.each([{ key: 'offboarding', name: 'offboarding.fifo', dlqName: 'offboarding-dlq.fifo' }] as const)(
    '$key',
    ({ key, name, dlqName }) => {
      it('creates a FIFO source queue with explicit dedup and a redrive policy to its FIFO DLQ', async () => {
        // Prepare
        const refs = local.queues[key];

        // Act
        const source = await attributesOf(refs.url);
        const dlq = await attributesOf(refs.dlqUrl);

        // Assess
        expect(refs.name).toBe(name);
        expect(refs.dlqName).toBe(dlqName);
        expect(source).toMatchObject({
          FifoQueue: 'true',
          ContentBasedDeduplication: 'false',
          VisibilityTimeout: String(visibilityTimeoutSeconds),
          QueueArn: refs.arn,
        });
        expect(JSON.parse(source.RedrivePolicy ?? '{}')).toEqual({
          deadLetterTargetArn: refs.dlqArn,
          maxReceiveCount: '5',
        });
        expect(dlq).toMatchObject({ FifoQueue: 'true', QueueArn: refs.dlqArn });
        expect(refs).toMatchObject({ fifo: true, maxReceiveCount: 5, batchSize: 10, maximumConcurrency: 5 });
      });
    },
  );
});

describe('what fauxqs does with FIFO queues', () => {
  it('returns at most one message per group in one receive, and locks the group while it is in flight', async () => {
    // Prepare
    const url = local.queues.offboarding.url;
    for (const body of ['a1', 'a2', 'a3']) await send(url, body, 'group-a');
    await send(url, 'b1', 'group-b');

    // Act
    const first = await receive(url);
    const whileLocked = await receive(url);
    const a1 = first.find((message) => message.Body === 'a1');
    await local.client.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: a1?.ReceiptHandle }));
    const afterDelete = await receive(url);

    // Assess
    expect(first.map((message) => message.Body).sort()).toEqual(['a1', 'b1']);
    expect(whileLocked).toEqual([]);
    expect(afterDelete.map((message) => message.Body)).toEqual(['a2']);
  });

  it('drops a resent deduplication id and answers with the original message id', async () => {
    // Prepare
    const url = local.queues.offboarding.url;
    const original = await send(url, 'first', 'group-d', 'same-id');

    // Act
    const resent = await send(url, 'second', 'group-other', 'same-id');
    const messages = await receive(url);

    // Assess
    expect(resent.MessageId).toBe(original.MessageId);
    expect(resent.SequenceNumber).toBe(original.SequenceNumber);
    expect(messages.map((message) => message.Body)).toEqual(['first']);
  });

  it('reports a missing deduplication id per entry in Failed[] (no content-based dedup)', async () => {
    // Act
    const answer = await local.client.send(
      new SendMessageBatchCommand({
        QueueUrl: local.queues.offboarding.url,
        Entries: [{ Id: 'x', MessageBody: 'no dedup id', MessageGroupId: 'g' }],
      }),
    );

    // Assess
    expect(answer.Failed).toEqual([expect.objectContaining({ Id: 'x', SenderFault: true })]);
  });

  it('moves a message to the DLQ on the receive after maxReceiveCount, keeping id, body and group', async () => {
    // Prepare
    const refs = local.queues.offboarding;
    const sent = await send(refs.url, 'poison', 'group-p');
    const counts: string[] = [];

    // Act
    for (let receiveNumber = 1; receiveNumber <= refs.maxReceiveCount; receiveNumber += 1) {
      const [message] = await receive(refs.url);
      counts.push(message?.Attributes?.ApproximateReceiveCount ?? 'none');
      await local.client.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: refs.url,
          ReceiptHandle: message?.ReceiptHandle,
          VisibilityTimeout: 0,
        }),
      );
    }
    const afterLimit = await receive(refs.url);
    const [dead] = await receive(refs.dlqUrl);

    // Assess
    expect(counts).toEqual(['1', '2', '3', '4', '5']);
    expect(afterLimit).toEqual([]);
    expect(dead).toMatchObject({ MessageId: sent.MessageId, Body: 'poison' });
    expect(dead?.Attributes?.MessageGroupId).toBe('group-p');
    // The count is not reset by the move: the DLQ receive is the seventh.
    expect(dead?.Attributes?.ApproximateReceiveCount).toBe(String(refs.maxReceiveCount + 2));
  });
});

describe('queueOf and toMessage', () => {
  it.each([
    { type: 'user.offboarded', queue: 'offboarding' },
    { type: 'membership.added', queue: 'accessChanges' },
    { type: 'membership.removed', queue: 'accessChanges' },
    { type: 'user.teams', queue: 'accessChanges' },
    { type: undefined, queue: 'accessChanges' },
  ])('routes $type to $queue', ({ type, queue }) => {
    expect(queueOf(eventFactory({ type }))).toBe(queue);
  });

  it.each([
    {
      name: 'user id as group, event id as dedup',
      event: { id: 'e-1', type: 'membership.added', user: { id: 'abc', name: 'n' } },
      groupId: 'abc',
      dedupId: 'e-1',
    },
    {
      name: 'user name as group when there is no id',
      event: { id: 'e-2', type: 'membership.added', user: { name: 'user01' } },
      groupId: 'user01',
      dedupId: 'e-2',
    },
  ])('$name', ({ event, groupId, dedupId }) => {
    expect(toMessage(event)).toMatchObject({ groupId, dedupId, body: JSON.stringify(event) });
  });

  it('uses a fixed group and a body hash for an unparseable body', () => {
    // Act
    const message = toMessage('{not json');

    // Assess
    expect(message.groupId).toBe('unparseable');
    expect(message.dedupId).toMatch(/^[0-9a-f]{64}$/);
    expect(message.queue).toBe('accessChanges');
  });

  it('hashes an event id that SQS would refuse, the same way every time', () => {
    // Act
    const first = toMessage({ id: 'has spaces', user: { id: 'u' } });
    const again = toMessage({ id: 'has spaces', user: { id: 'u' }, extra: 1 });

    // Assess
    expect(first.dedupId).toMatch(/^[0-9a-f]{64}$/);
    expect(again.dedupId).toBe(first.dedupId);
  });
});

describe('sendEvents', () => {
  it('sends each event to its queue: joins to the standard queue without group, offboardings by user to FIFO', async () => {
    // Prepare
    const user = { id: userId(), name: 'user02' };
    const joins = Array.from({ length: 12 }, (_, index) => eventFactory({ user, team: `team-${index}` }));
    const offboard = eventFactory({ type: 'user.offboarded', user });

    // Act
    const counts = await sendEvents(local.client, local.queues, [...joins, offboard]);
    const bodies: string[] = [];
    for (let round = 0; round < 20 && bodies.length < joins.length; round += 1) {
      const messages = await receive(local.queues.accessChanges.url);
      if (messages.length === 0) break;
      for (const message of messages) {
        expect(message.Attributes?.MessageGroupId).toBeUndefined();
        bodies.push(message.Body ?? '');
        await local.client.send(
          new DeleteMessageCommand({
            QueueUrl: local.queues.accessChanges.url,
            ReceiptHandle: message.ReceiptHandle,
          }),
        );
      }
    }
    const offboarding = await receive(local.queues.offboarding.url);

    // Assess: a standard queue keeps no order (the store orders facts by their instants).
    expect(counts).toEqual({ sent: 13, accessChanges: 12, offboarding: 1, retried: 0 });
    expect(bodies.map((body) => JSON.parse(body).id).sort()).toEqual(joins.map((event) => event.id).sort());
    expect(offboarding.map((message) => message.Attributes?.MessageGroupId)).toEqual([user.id]);
    expect(offboarding.map((message) => message.Attributes?.MessageDeduplicationId)).toEqual([offboard.id]);
  });

  it('sends a resent offboarding once (dedup id = event id); the standard queue takes both copies', async () => {
    // Prepare
    const offboard = eventFactory({ type: 'user.offboarded' });
    const join = eventFactory();

    // Act
    await sendEvents(local.client, local.queues, [offboard, join]);
    await sendEvents(local.client, local.queues, [offboard, join]);
    const fifo = await attributesOf(local.queues.offboarding.url);
    const standard = await attributesOf(local.queues.accessChanges.url);

    // Assess: the store takes a second copy of a join as the same fact (a duplicate).
    expect(fifo.ApproximateNumberOfMessages).toBe('1');
    expect(standard.ApproximateNumberOfMessages).toBe('2');
  });

  it('sends ready messages as given (group and dedup ids on a FIFO queue only)', async () => {
    // Act
    await sendEvents(local.client, local.queues, [
      { body: 'raw', groupId: 'g-raw', dedupId: 'd-raw' },
      { body: 'raw-off', groupId: 'g-off', dedupId: 'd-off', queue: 'offboarding' },
    ]);
    const [message] = await receive(local.queues.accessChanges.url);
    const [off] = await receive(local.queues.offboarding.url);

    // Assess
    expect(message?.Body).toBe('raw');
    expect(message?.Attributes?.MessageGroupId).toBeUndefined();
    expect(off?.Attributes).toMatchObject({ MessageGroupId: 'g-off', MessageDeduplicationId: 'd-off' });
  });

  it('sends the good entries and throws a ProducerError naming the refused one, without its body', async () => {
    // Prepare: SQS refuses U+0000 in a body (a sender fault: not retried); a string is a raw body
    const good = eventFactory();
    const bad = 'secret-looking body \u0000';

    // Act
    const sending = sendEvents(local.client, local.queues, [good, bad]);

    // Assess
    const error = await sending.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ProducerError);
    expect((error as ProducerError).failed).toEqual([
      expect.objectContaining({ index: 1, dedupId: toMessage(bad).dedupId, code: 'InvalidMessageContents' }),
    ]);
    expect(error).toMatchObject({ retryable: false });
    expect((error as ProducerError).message).not.toContain('secret-looking');
    expect((await attributesOf(local.queues.accessChanges.url)).ApproximateNumberOfMessages).toBe('1');
  });

  describe('with server-side Failed[] entries', () => {
    const flaky = new SQSClient({ region: 'us-east-1' });
    const mock = mockClient(flaky);
    const queues = { accessChanges: { url: 'https://sqs/ac' }, offboarding: { url: 'https://sqs/off' } };

    beforeEach(() => {
      mock.reset();
    });

    afterAll(() => {
      mock.restore();
      flaky.destroy();
    });

    it('retries only the failed entry, then counts it as retried', async () => {
      // Prepare
      mock
        .on(SendMessageBatchCommand)
        .resolvesOnce({
          Successful: [{ Id: '0', MessageId: 'm0', MD5OfMessageBody: '' }],
          Failed: [{ Id: '1', SenderFault: false, Code: 'InternalError' }],
        })
        .resolves({ Successful: [{ Id: '1', MessageId: 'm1', MD5OfMessageBody: '' }], Failed: [] });

      // Act
      const counts = await sendEvents(flaky, queues, [eventFactory(), eventFactory()], { backoffMs: 1 });

      // Assess
      const calls = mock.commandCalls(SendMessageBatchCommand);
      expect(calls).toHaveLength(2);
      expect(calls[1]?.args[0].input.Entries?.map((entry) => entry.Id)).toEqual(['1']);
      expect(counts).toEqual({ sent: 2, accessChanges: 2, offboarding: 0, retried: 1 });
    });

    it('gives up after the attempts and throws a retryable ProducerError', async () => {
      // Prepare
      mock.on(SendMessageBatchCommand).resolves({
        Successful: [],
        Failed: [{ Id: '0', SenderFault: false, Code: 'InternalError' }],
      });

      // Act
      const error = await sendEvents(flaky, queues, [eventFactory()], { attempts: 3, backoffMs: 1 }).catch(
        (caught: unknown) => caught,
      );

      // Assess
      expect(mock.commandCalls(SendMessageBatchCommand)).toHaveLength(3);
      expect(error).toBeInstanceOf(ProducerError);
      expect(error).toMatchObject({ retryable: true, code: 'InternalError' });
    });
  });
});

describe('waitForDrain', () => {
  it('throws a TIMEOUT SyncError while a message is left, reporting progress', async () => {
    // Prepare
    await send(local.queues.offboarding.url, 'left', 'g');
    const progress: number[] = [];

    // Act
    const error = await waitForDrain(
      local.client,
      [local.queues.accessChanges.url, local.queues.offboarding.url],
      {
        timeoutMs: 150,
        pollMs: 50,
        onProgress: (depths) => progress.push(depths.reduce((sum, depth) => sum + depth.visible, 0)),
      },
    ).catch((caught: unknown) => caught);

    // Assess
    expect(error).toBeInstanceOf(SyncError);
    expect(error).toMatchObject({ code: 'TIMEOUT', retryable: true });
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.every((visible) => visible === 1)).toBe(true);
  });

  it('resolves once in-flight messages are deleted', async () => {
    // Prepare
    const url = local.queues.accessChanges.url;
    await send(url, 'work', 'g');
    const [message] = await receive(url);
    const draining = waitForDrain(local.client, [url], { timeoutMs: 5_000, pollMs: 20 });

    // Act
    await local.client.send(
      new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: message?.ReceiptHandle }),
    );

    // Assess
    await expect(draining).resolves.toBeUndefined();
  });
});

describe('startLocalDynamo', () => {
  it('serves DynamoDB on 127.0.0.1 with tables ACTIVE at once, and stops', async () => {
    // Prepare
    const dynamo = await startLocalDynamo();

    try {
      // Act
      await dynamo.client.send(
        new CreateTableCommand({
          TableName: 'probe',
          AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
      const described = await dynamo.client.send(new DescribeTableCommand({ TableName: 'probe' }));

      // Assess
      expect(new URL(dynamo.endpoint).hostname).toBe('127.0.0.1');
      expect(described.Table?.TableStatus).toBe('ACTIVE');
    } finally {
      await dynamo.stop();
    }
    await expect(fetch(dynamo.endpoint)).rejects.toThrow();
  });
});

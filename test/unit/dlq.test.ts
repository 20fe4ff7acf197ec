import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { createDeadLetterSender, type DeadLetter } from '../../lib/dlq.ts';
import { InvalidNameError, SyncError } from '../../lib/errors.ts';

expect.extend(allCustomMatcher);

const sqsMock = mockClient(SQSClient);
const queueUrl = 'https://sqs.eu-west-1.amazonaws.com/123456789012/access-changes-dlq.fifo';
const failedAt = new Date('2026-11-23T10:00:00.000Z');

const letterFactory = (n: number, overrides: Partial<DeadLetter> = {}): DeadLetter => ({
  messageId: `msg-${n}`,
  body: `{"id":"ev-${n}"}`,
  groupId: `user-${n}`,
  receiveCount: 1,
  error: new SyncError('repository not found', {
    code: 'SVCSTG.SWR.4040010',
    retryable: false,
    target: 'core/api/server',
  }),
  ...overrides,
});

describe('dead-letter sender', () => {
  beforeEach(() => {
    sqsMock.reset();
  });

  it('sends the original body, group and every reason attribute', async () => {
    // Prepare
    sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });

    // Act
    const result = await sender.send([letterFactory(1, { receiveCount: 3 })], failedAt);

    // Assess
    expect(result).toEqual({ sent: ['msg-1'], failed: [] });
    expect(sqsMock).toHaveReceivedCommandWith(SendMessageBatchCommand, {
      QueueUrl: queueUrl,
      Entries: [
        {
          Id: '0',
          MessageBody: '{"id":"ev-1"}',
          MessageGroupId: 'user-1',
          MessageDeduplicationId: 'msg-1',
          MessageAttributes: {
            errorCode: { DataType: 'String', StringValue: 'SVCSTG.SWR.4040010' },
            errorMessage: { DataType: 'String', StringValue: 'repository not found' },
            failedTarget: { DataType: 'String', StringValue: 'core/api/server' },
            attempts: { DataType: 'Number', StringValue: '3' },
            sourceMessageId: { DataType: 'String', StringValue: 'msg-1' },
            failedAt: { DataType: 'String', StringValue: '2026-11-23T10:00:00.000Z' },
          },
        },
      ],
    });
  });

  it('leaves failedTarget out when no target was involved', async () => {
    // Prepare
    sqsMock.on(SendMessageBatchCommand).resolves({});
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });

    // Act
    await sender.send([letterFactory(1, { error: new InvalidNameError('namespace', 'bad') })], failedAt);

    // Assess
    const input = sqsMock.commandCalls(SendMessageBatchCommand)[0]?.args[0].input;
    expect(input?.Entries?.[0]?.MessageAttributes).not.toHaveProperty('failedTarget');
    expect(input?.Entries?.[0]?.MessageAttributes?.errorCode?.StringValue).toBe('INVALID_NAME');
  });

  it('reports entries listed in Failed[] as not sent, so they are retried', async () => {
    // Prepare
    sqsMock.on(SendMessageBatchCommand).resolves({
      Successful: [{ Id: '0', MessageId: 'x', MD5OfMessageBody: 'y' }],
      Failed: [{ Id: '1', Code: 'InternalError', Message: 'try later', SenderFault: false }],
    });
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });

    // Act
    const result = await sender.send([letterFactory(1), letterFactory(2)], failedAt);

    // Assess
    expect(result.sent).toEqual(['msg-1']);
    expect(result.failed).toEqual([{ messageId: 'msg-2', reason: 'InternalError: try later' }]);
  });

  it('reports a whole chunk as failed when the call throws', async () => {
    // Prepare
    sqsMock.on(SendMessageBatchCommand).rejects(new Error('connection reset'));
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });

    // Act
    const result = await sender.send([letterFactory(1), letterFactory(2)], failedAt);

    // Assess
    expect(result.sent).toEqual([]);
    expect(result.failed.map((entry) => entry.messageId)).toEqual(['msg-1', 'msg-2']);
  });

  it('sends in chunks of ten', async () => {
    // Prepare
    sqsMock.on(SendMessageBatchCommand).resolves({});
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });
    const letters = Array.from({ length: 23 }, (_, n) => letterFactory(n));

    // Act
    const result = await sender.send(letters, failedAt);

    // Assess
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageBatchCommand, 3);
    expect(result.sent).toHaveLength(23);
  });
});

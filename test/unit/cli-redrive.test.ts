import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../lib/cli/main.ts';
import { redrive } from '../../lib/redrive.ts';

expect.extend(allCustomMatcher);

const sqsMock = mockClient(SQSClient);
const dlqUrl = 'https://sqs.eu-west-1.amazonaws.com/123456789012/access-changes-dlq.fifo';
const sourceUrl = 'https://sqs.eu-west-1.amazonaws.com/123456789012/access-changes.fifo';

const text = (value: string) => ({ DataType: 'String', StringValue: value });

/** A DLQ message as the pipeline's dead-letter sender leaves it. */
const letterFactory = (n: number, options: { errorCode?: string; dedup?: boolean } = {}): Message => ({
  MessageId: `dlq-${n}`,
  ReceiptHandle: `rh-${n}`,
  Body: `{"id":"ev-${n}"}`,
  Attributes: {
    MessageGroupId: `user-${n}`,
    ...(options.dedup === false ? {} : { MessageDeduplicationId: `src-${n}` }),
  },
  MessageAttributes: {
    errorCode: text(options.errorCode ?? 'SVCSTG.SWR.4040010'),
    errorMessage: text('repository not found'),
    attempts: { DataType: 'Number', StringValue: '1' },
    sourceMessageId: text(`source-${n}`),
    failedAt: text('2026-11-23T10:00:00.000Z'),
    failedTarget: text('core/api/server'),
    traceparent: text(`00-trace-${n}`),
  },
});

/** The DLQ answers these receives in turn, then nothing. */
const dlqHolds = (...batches: Message[][]): void => {
  let chain = sqsMock.on(ReceiveMessageCommand);
  for (const batch of batches) chain = chain.resolvesOnce({ Messages: batch });
  chain.resolves({});
};

describe('redrive', () => {
  beforeEach(() => {
    sqsMock.reset();
    sqsMock.on(DeleteMessageBatchCommand).resolves({ Successful: [], Failed: [] });
    sqsMock.on(ChangeMessageVisibilityBatchCommand).resolves({ Successful: [], Failed: [] });
  });

  it('keeps group and dedup ids, drops the DLQ attributes, deletes what was sent', async () => {
    // Prepare
    dlqHolds([letterFactory(1), letterFactory(2)]);
    sqsMock.on(SendMessageBatchCommand).resolves({
      Successful: [
        { Id: '0', MessageId: 'n0', MD5OfMessageBody: '' },
        { Id: '1', MessageId: 'n1', MD5OfMessageBody: '' },
      ],
    });

    // Act
    const report = await redrive({ sqs: new SQSClient({}), dlqUrl, sourceUrl });

    // Assess
    expect(report).toMatchObject({ moved: 2, skipped: 0, failed: 0 });
    expect(sqsMock).toHaveReceivedCommandWith(SendMessageBatchCommand, {
      QueueUrl: sourceUrl,
      Entries: [
        {
          Id: '0',
          MessageBody: '{"id":"ev-1"}',
          MessageGroupId: 'user-1',
          MessageDeduplicationId: 'src-1',
          MessageAttributes: { traceparent: text('00-trace-1') },
        },
        {
          Id: '1',
          MessageBody: '{"id":"ev-2"}',
          MessageGroupId: 'user-2',
          MessageDeduplicationId: 'src-2',
          MessageAttributes: { traceparent: text('00-trace-2') },
        },
      ],
    });
    expect(sqsMock).toHaveReceivedCommandWith(DeleteMessageBatchCommand, {
      QueueUrl: dlqUrl,
      Entries: [
        { Id: '0', ReceiptHandle: 'rh-1' },
        { Id: '1', ReceiptHandle: 'rh-2' },
      ],
    });
  });

  it('never deletes a message SQS reported in Failed[]', async () => {
    // Prepare
    dlqHolds([letterFactory(1), letterFactory(2)]);
    sqsMock.on(SendMessageBatchCommand).resolves({
      Successful: [{ Id: '0', MessageId: 'n0', MD5OfMessageBody: '' }],
      Failed: [{ Id: '1', Code: 'InternalError', SenderFault: false, Message: 'try again' }],
    });

    // Act
    const report = await redrive({ sqs: new SQSClient({}), dlqUrl, sourceUrl });

    // Assess
    expect(report).toMatchObject({ moved: 1, failed: 1 });
    expect(report.entries.find((entry) => entry.messageId === 'dlq-2')?.reason).toContain('InternalError');
    const deleted = sqsMock
      .commandCalls(DeleteMessageBatchCommand)
      .flatMap((call) => call.args[0].input.Entries);
    expect(deleted.map((entry) => entry?.ReceiptHandle)).toEqual(['rh-1']);
    // The failed one is made visible again when the run ends.
    expect(sqsMock).toHaveReceivedCommandWith(ChangeMessageVisibilityBatchCommand, {
      Entries: [{ Id: '0', ReceiptHandle: 'rh-2', VisibilityTimeout: 0 }],
    });
  });

  it('deletes nothing when the send throws', async () => {
    // Prepare
    dlqHolds([letterFactory(1), letterFactory(2)]);
    sqsMock.on(SendMessageBatchCommand).rejects(new Error('socket hang up'));

    // Act
    const report = await redrive({ sqs: new SQSClient({}), dlqUrl, sourceUrl });

    // Assess
    expect(report).toMatchObject({ moved: 0, failed: 2 });
    expect(sqsMock).not.toHaveReceivedCommand(DeleteMessageBatchCommand);
  });

  it('counts an entry in neither Successful[] nor Failed[] as not sent', async () => {
    // Prepare
    dlqHolds([letterFactory(1)]);
    sqsMock.on(SendMessageBatchCommand).resolves({});

    // Act
    const report = await redrive({ sqs: new SQSClient({}), dlqUrl, sourceUrl });

    // Assess
    expect(report).toMatchObject({ moved: 0, failed: 1 });
    expect(sqsMock).not.toHaveReceivedCommand(DeleteMessageBatchCommand);
  });

  it('moves only the asked error code and holds the others until the end', async () => {
    // Prepare
    dlqHolds([
      letterFactory(1, { errorCode: 'AUTH_FAILED' }),
      letterFactory(2),
      letterFactory(3, { errorCode: 'AUTH_FAILED' }),
    ]);
    sqsMock.on(SendMessageBatchCommand).resolves({
      Successful: [
        { Id: '0', MessageId: 'n0', MD5OfMessageBody: '' },
        { Id: '1', MessageId: 'n1', MD5OfMessageBody: '' },
      ],
    });

    // Act
    const report = await redrive({ sqs: new SQSClient({}), dlqUrl, sourceUrl, errorCode: 'AUTH_FAILED' });

    // Assess
    expect(report).toMatchObject({ moved: 2, skipped: 1, failed: 0 });
    // One send of two entries: the AUTH_FAILED ones.
    expect(sqsMock).toHaveReceivedCommandWith(SendMessageBatchCommand, {
      Entries: [
        expect.objectContaining({ MessageGroupId: 'user-1' }),
        expect.objectContaining({ MessageGroupId: 'user-3' }),
      ],
    });
    expect(sqsMock).toHaveReceivedCommandWith(ChangeMessageVisibilityBatchCommand, {
      Entries: [{ Id: '0', ReceiptHandle: 'rh-2', VisibilityTimeout: 0 }],
    });
  });

  it('falls back to the sourceMessageId attribute for the dedup id', async () => {
    // Prepare
    dlqHolds([letterFactory(4, { dedup: false })]);
    sqsMock
      .on(SendMessageBatchCommand)
      .resolves({ Successful: [{ Id: '0', MessageId: 'n', MD5OfMessageBody: '' }] });

    // Act
    await redrive({ sqs: new SQSClient({}), dlqUrl, sourceUrl });

    // Assess
    expect(sqsMock).toHaveReceivedCommandWith(SendMessageBatchCommand, {
      Entries: [expect.objectContaining({ MessageDeduplicationId: 'source-4' })],
    });
  });

  it('reports a message sent but not deleted', async () => {
    // Prepare
    dlqHolds([letterFactory(1)]);
    sqsMock
      .on(SendMessageBatchCommand)
      .resolves({ Successful: [{ Id: '0', MessageId: 'n', MD5OfMessageBody: '' }] });
    sqsMock
      .on(DeleteMessageBatchCommand)
      .resolves({ Failed: [{ Id: '0', Code: 'ReceiptHandleIsInvalid', SenderFault: true }] });

    // Act
    const report = await redrive({ sqs: new SQSClient({}), dlqUrl, sourceUrl });

    // Assess
    expect(report).toMatchObject({ moved: 0, failed: 1 });
    expect(report.entries[0]?.reason).toMatch(/copied to the source queue but not deleted/);
  });

  it('stops after --max messages, and when a receive brings only messages already seen', async () => {
    // Prepare
    dlqHolds([letterFactory(1), letterFactory(2)], [letterFactory(3)], [letterFactory(4)]);

    // Act
    const bounded = await redrive({ sqs: new SQSClient({}), dlqUrl, sourceUrl, dryRun: true, max: 3 });
    sqsMock.on(ReceiveMessageCommand).resolves({ Messages: [letterFactory(1)] });
    const repeated = await redrive({ sqs: new SQSClient({}), dlqUrl, sourceUrl, dryRun: true });

    // Assess
    expect(bounded).toMatchObject({ moved: 3, dryRun: true });
    expect(
      sqsMock.commandCalls(ReceiveMessageCommand).map((call) => call.args[0].input.MaxNumberOfMessages),
    ).toEqual([3, 1, 10, 10]);
    expect(repeated).toMatchObject({ moved: 1 });
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageBatchCommand);
  });
});

describe('swr-access redrive', () => {
  beforeEach(() => {
    sqsMock.reset();
    sqsMock.on(ChangeMessageVisibilityBatchCommand).resolves({});
    sqsMock.on(DeleteMessageBatchCommand).resolves({});
  });

  it.each([
    [{ Successful: [{ Id: '0', MessageId: 'n', MD5OfMessageBody: '' }] }, 0, { moved: 1, failed: 0 }],
    [{ Failed: [{ Id: '0', Code: 'InternalError', SenderFault: false }] }, 1, { moved: 0, failed: 1 }],
  ])('answers %j with exit %i and a JSON report', async (answer, exit, counts) => {
    // Prepare
    dlqHolds([letterFactory(1)]);
    sqsMock.on(SendMessageBatchCommand).resolves(answer);
    const out: string[] = [];
    const err: string[] = [];

    // Act
    const code = await main(['redrive', '--queue', 'access-changes', '--json'], {
      stdout: { write: (chunk: string) => out.push(chunk) },
      stderr: { write: (chunk: string) => err.push(chunk) },
      env: { ACCESS_CHANGES_QUEUE_URL: sourceUrl, ACCESS_CHANGES_DLQ_URL: dlqUrl },
      aws: { sqs: new SQSClient({}) },
    });

    // Assess
    expect(code).toBe(exit);
    expect(JSON.parse(out.join(''))).toMatchObject({ queue: 'access-changes', ...counts });
    expect(err.join('')).toContain('redrive access-changes: 1 seen');
  });
});

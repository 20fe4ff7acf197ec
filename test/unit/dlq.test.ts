import { createHash } from 'node:crypto';
import {
  BatchRequestTooLong,
  type MessageAttributeValue,
  SendMessageBatchCommand,
  type SendMessageBatchRequestEntry,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import { createDeadLetterSender, type DeadLetter, defaultLimits, sqsMessageSize } from '../../lib/dlq.ts';
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

/** Every entry SQS was asked to take, call by call. */
const sentEntries = (): SendMessageBatchRequestEntry[][] =>
  sqsMock.commandCalls(SendMessageBatchCommand).map((call) => call.args[0].input.Entries ?? []);

const sizeOf = (entry: SendMessageBatchRequestEntry): number =>
  sqsMessageSize(
    entry.MessageBody ?? '',
    (entry.MessageAttributes ?? {}) as Record<string, MessageAttributeValue>,
  );

const attribute = (entry: SendMessageBatchRequestEntry | undefined, name: string): string | undefined =>
  entry?.MessageAttributes?.[name]?.StringValue;

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

const senderFault = (id: string, code = 'InvalidParameterValue') => ({
  Id: id,
  Code: code,
  Message: 'One or more parameters are invalid',
  SenderFault: true,
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
    const [entry] = sentEntries()[0] ?? [];
    expect(entry?.MessageAttributes).not.toHaveProperty('failedTarget');
    expect(attribute(entry, 'errorCode')).toBe('INVALID_NAME');
  });

  it('keeps secrets and characters SQS refuses out of the reason', async () => {
    // Prepare
    sqsMock.on(SendMessageBatchCommand).resolves({});
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });
    const echo = 'IAM said: Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig\u0000\uD800 end';

    // Act
    await sender.send(
      [letterFactory(1, { error: new SyncError(echo, { code: 'AUTH', retryable: false }) })],
      failedAt,
    );

    // Assess
    const reason = attribute(sentEntries()[0]?.[0], 'errorMessage') ?? '';
    expect(reason).not.toContain('eyJhbGciOiJIUzI1NiJ9');
    expect(reason).toContain('[REDACTED]');
    expect(reason).toMatch(/\uFFFD\uFFFD end$/);
  });

  it('sends an entry listed in Failed[] again on its own', async () => {
    // Prepare
    sqsMock
      .on(SendMessageBatchCommand)
      .resolvesOnce({
        Successful: [{ Id: '0', MessageId: 'x', MD5OfMessageBody: 'y' }],
        Failed: [{ Id: '1', Code: 'InternalError', Message: 'try later', SenderFault: false }],
      })
      .resolves({});
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });

    // Act
    const result = await sender.send([letterFactory(1), letterFactory(2)], failedAt);

    // Assess
    expect(result).toEqual({ sent: ['msg-1', 'msg-2'], failed: [] });
    expect(sentEntries().map((entries) => entries.map((entry) => entry.MessageDeduplicationId))).toEqual([
      ['msg-1', 'msg-2'],
      ['msg-2'],
    ]);
  });

  it('reports a letter as not sent when SQS fails it again for a passing reason, so it is retried', async () => {
    // Prepare
    sqsMock
      .on(SendMessageBatchCommand)
      .resolvesOnce({
        Failed: [{ Id: '1', Code: 'InternalError', Message: 'try later', SenderFault: false }],
      })
      .resolves({ Failed: [{ Id: '0', Code: 'ServiceUnavailable', Message: 'later', SenderFault: false }] });
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });

    // Act
    const result = await sender.send([letterFactory(1), letterFactory(2)], failedAt);

    // Assess: no minimal letter for weather; the original is retried by SQS with its body
    expect(result.sent).toEqual(['msg-1']);
    expect(result.failed).toEqual([{ messageId: 'msg-2', reason: 'ServiceUnavailable: later' }]);
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageBatchCommand, 2);
  });

  it('reports a whole batch as failed when the call throws, without a call per letter', async () => {
    // Prepare
    sqsMock.on(SendMessageBatchCommand).rejects(new Error('connection reset'));
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });

    // Act
    const result = await sender.send([letterFactory(1), letterFactory(2)], failedAt);

    // Assess
    expect(result.sent).toEqual([]);
    expect(result.failed).toEqual([
      { messageId: 'msg-1', reason: 'Error: connection reset' },
      { messageId: 'msg-2', reason: 'Error: connection reset' },
    ]);
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageBatchCommand, 1);
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

  it('shortens a body over the message limit and says so, keeping the reason and the source id', async () => {
    // Prepare: 300 KB whose cut falls inside a four-byte character
    sqsMock.on(SendMessageBatchCommand).resolves({});
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });
    const body = `{"id":"big","pad":"${'🙂'.repeat(75_000)}"}`;

    // Act
    const result = await sender.send([letterFactory(1, { body })], failedAt);

    // Assess
    const [entry] = sentEntries()[0] ?? [];
    expect(result).toMatchObject({ sent: ['msg-1'], shortened: ['msg-1'] });
    expect(sizeOf(entry as SendMessageBatchRequestEntry)).toBeLessThanOrEqual(defaultLimits.messageBytes);
    expect(sizeOf(entry as SendMessageBatchRequestEntry)).toBeGreaterThan(defaultLimits.messageBytes - 4);
    expect(body.startsWith(entry?.MessageBody ?? 'x')).toBe(true);
    expect(entry?.MessageBody).not.toMatch(/[\uD800-\uDBFF]$/);
    expect(attribute(entry, 'bodySha256')).toBe(sha256(body));
    expect(attribute(entry, 'bodyBytes')).toBe(String(Buffer.byteLength(body)));
    expect(entry?.MessageAttributes?.bodyBytes?.DataType).toBe('Number');
    expect(attribute(entry, 'bodyTruncated')).toBe('true');
    expect(attribute(entry, 'sourceMessageId')).toBe('msg-1');
    expect(attribute(entry, 'errorMessage')).toBe('repository not found');
    expect(entry?.MessageDeduplicationId).toBe('msg-1');
  });

  it('cuts batches by size as SQS counts it, in order, whatever the bodies', async () => {
    // Prepare
    const bodies = fc.array(
      fc.oneof(
        fc.string({ maxLength: 50 }),
        fc.integer({ min: 1, max: 400_000 }).map((n) => 'x'.repeat(n)),
        fc.integer({ min: 1, max: 120_000 }).map((n) => 'é🙂'.repeat(n)),
      ),
      { minLength: 1, maxLength: 25 },
    );

    // Assess
    await fc.assert(
      fc.asyncProperty(bodies, async (generated) => {
        sqsMock.reset();
        sqsMock.on(SendMessageBatchCommand).resolves({});
        const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });
        const letters = generated.map((body, n) => letterFactory(n, { body }));

        const result = await sender.send(letters, failedAt);

        const calls = sentEntries();
        expect(result.sent).toEqual(letters.map((letter) => letter.messageId));
        expect(calls.flat().map((entry) => entry.MessageDeduplicationId)).toEqual(result.sent);
        for (const entries of calls) {
          expect(entries.length).toBeLessThanOrEqual(10);
          expect(entries.reduce((sum, entry) => sum + sizeOf(entry), 0)).toBeLessThanOrEqual(
            defaultLimits.batchBytes,
          );
          for (const entry of entries) {
            expect(sizeOf(entry)).toBeLessThanOrEqual(defaultLimits.messageBytes);
            expect(attribute(entry, 'errorCode')).toBe('SVCSTG.SWR.4040010');
          }
        }
      }),
      { seed: 20261123, numRuns: 40 },
    );
  });

  it('sends each letter on its own when SQS refuses the batch for its size', async () => {
    // Prepare
    sqsMock
      .on(SendMessageBatchCommand)
      .rejectsOnce(
        new BatchRequestTooLong({
          message: 'Batch requests cannot be longer than 262144 bytes',
          $metadata: {},
        }),
      )
      .resolves({});
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });
    const letters = [1, 2, 3].map((n) => letterFactory(n, { body: 'y'.repeat(100_000) }));

    // Act
    const result = await sender.send(letters, failedAt);

    // Assess
    expect(result.sent).toEqual(['msg-1', 'msg-2', 'msg-3']);
    expect(sentEntries().map((entries) => entries.length)).toEqual([3, 1, 1, 1]);
  });

  it('as a last resort sends a minimal letter: the reason, the body hash and the source id', async () => {
    // Prepare: SQS refuses the letter in the batch and alone (its fault), takes the minimal one
    sqsMock
      .on(SendMessageBatchCommand)
      .resolvesOnce({ Failed: [senderFault('0', 'InvalidMessageContents')] })
      .resolvesOnce({ Failed: [senderFault('0', 'InvalidMessageContents')] })
      .resolves({});
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });
    const body = '{"id":"odd"}';

    // Act
    const result = await sender.send([letterFactory(1, { body })], failedAt);

    // Assess
    expect(result).toMatchObject({ sent: ['msg-1'], failed: [], minimal: ['msg-1'] });
    const minimal = sentEntries()[2]?.[0];
    expect(minimal?.MessageBody).not.toContain('odd');
    expect(attribute(minimal, 'errorCode')).toBe('SVCSTG.SWR.4040010');
    expect(attribute(minimal, 'errorMessage')).toBe('repository not found');
    expect(attribute(minimal, 'sourceMessageId')).toBe('msg-1');
    expect(attribute(minimal, 'bodySha256')).toBe(sha256(body));
    expect(attribute(minimal, 'bodyTruncated')).toBe('true');
    expect(attribute(minimal, 'letterRefused')).toMatch(/InvalidMessageContents/);
    expect(minimal?.MessageDeduplicationId).toBe('msg-1');
  });

  it('reports the letter as not sent when even the minimal letter is refused', async () => {
    // Prepare
    sqsMock.on(SendMessageBatchCommand).resolves({ Failed: [senderFault('0')] });
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });

    // Act
    const result = await sender.send([letterFactory(1)], failedAt);

    // Assess
    expect(result.sent).toEqual([]);
    expect(result.failed).toEqual([
      { messageId: 'msg-1', reason: expect.stringMatching(/InvalidParameterValue/) },
    ]);
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageBatchCommand, 3);
  });

  it('stops at the deadline: what is not sent by then is reported failed, and nothing more is tried', async () => {
    // Prepare: SQS accepts the connection and never answers
    sqsMock.on(SendMessageBatchCommand).callsFake(() => new Promise(() => undefined));
    const sender = createDeadLetterSender({ sqs: new SQSClient({}), queueUrl });
    const letters = Array.from({ length: 15 }, (_, n) => letterFactory(n));

    // Act
    const result = await sender.send(letters, failedAt, { deadline: Date.now() + 50 });

    // Assess
    expect(result.sent).toEqual([]);
    expect(result.failed).toHaveLength(15);
    for (const entry of result.failed) expect(entry.reason).toMatch(/AwsDeadlineError: SQS SendMessageBatch/);
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageBatchCommand, 1);
  });
});

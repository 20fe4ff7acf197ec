import { createHash } from 'node:crypto';
import {
  CreateQueueCommand,
  type Message,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../../lib/cli/io.ts';
import { main } from '../../lib/cli/main.ts';
import { createDeadLetterSender, type DeadLetter } from '../../lib/dlq.ts';
import { SyncError } from '../../lib/errors.ts';
import { type LocalSqs, startLocalSqs } from '../../lib/local/sqs.ts';
import { redrive } from '../../lib/redrive.ts';

let local: LocalSqs;

beforeAll(async () => {
  local = await startLocalSqs();
});

afterAll(async () => {
  await local.stop();
});

/** A letter as the pipeline dead-letters it: original body and group, the reason as attributes. */
const letterFactory = (n: number, code: string): DeadLetter => ({
  messageId: `source-msg-${n}`,
  body: JSON.stringify({
    id: `ev-${n}`,
    type: 'user.offboarded',
    occurredAt: '2026-11-20T10:00:00Z',
    user: { name: `user${n}` },
  }),
  groupId: `group-${n}`,
  receiveCount: 2,
  error: new SyncError('failed', { code, retryable: false }),
});

/** Every message now visible in a queue (bounded), with group, dedup id and attributes. */
const drainVisible = async (sqs: SQSClient, url: string) => {
  const found: Array<{ body: string; group?: string; dedup?: string; attributes: string[] }> = [];
  for (let round = 0; round < 20; round += 1) {
    const answer = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['MessageGroupId', 'MessageDeduplicationId'],
        VisibilityTimeout: 60,
        WaitTimeSeconds: 0,
      }),
    );
    const messages = answer.Messages ?? [];
    if (messages.length === 0) break;
    for (const message of messages)
      found.push({
        body: message.Body ?? '',
        group: message.Attributes?.MessageGroupId,
        dedup: message.Attributes?.MessageDeduplicationId,
        attributes: Object.keys(message.MessageAttributes ?? {}),
      });
  }
  return found.sort((a, b) => (a.body < b.body ? -1 : 1));
};

const purge = async (): Promise<void> => {
  for (const queue of Object.values(local.queues))
    for (const url of [queue.url, queue.dlqUrl])
      await local.client.send(new PurgeQueueCommand({ QueueUrl: url }));
};

describe('redrive against fauxqs', () => {
  beforeEach(async () => {
    await purge();
  });

  it('moves only the filtered messages, keeping group and dedup ids, and leaves the others visible', async () => {
    // Prepare
    const queue = local.queues.offboarding;
    const sender = createDeadLetterSender({ sqs: local.client, queueUrl: queue.dlqUrl });
    await sender.send(
      [letterFactory(1, 'AUTH_FAILED'), letterFactory(2, 'SCHEMA'), letterFactory(3, 'AUTH_FAILED')],
      new Date(),
    );

    // Act
    const report = await redrive({
      sqs: local.client,
      dlqUrl: queue.dlqUrl,
      sourceUrl: queue.url,
      errorCode: 'AUTH_FAILED',
    });
    const moved = await drainVisible(local.client, queue.url);
    const left = await drainVisible(local.client, queue.dlqUrl);

    // Assess
    expect(report).toMatchObject({ moved: 2, skipped: 1, failed: 0 });
    expect(moved).toEqual([
      { body: letterFactory(1, '').body, group: 'group-1', dedup: 'source-msg-1', attributes: [] },
      { body: letterFactory(3, '').body, group: 'group-3', dedup: 'source-msg-3', attributes: [] },
    ]);
    expect(left).toHaveLength(1);
    expect(left[0]).toMatchObject({ body: letterFactory(2, '').body, group: 'group-2' });
    expect(left[0]?.attributes).toContain('errorCode');
  });

  it('moves nothing on a dry run, and everything is visible again at once', async () => {
    // Prepare
    const queue = local.queues.accessChanges;
    const sender = createDeadLetterSender({ sqs: local.client, queueUrl: queue.dlqUrl });
    await sender.send([letterFactory(4, 'SCHEMA'), letterFactory(5, 'SCHEMA')], new Date());

    // Act
    const report = await redrive({
      sqs: local.client,
      dlqUrl: queue.dlqUrl,
      sourceUrl: queue.url,
      dryRun: true,
    });
    const moved = await drainVisible(local.client, queue.url);
    const left = await drainVisible(local.client, queue.dlqUrl);

    // Assess
    expect(report).toMatchObject({ dryRun: true, moved: 2, skipped: 0, failed: 0 });
    expect(moved).toEqual([]);
    expect(left).toHaveLength(2);
  });

  it('runs as `swr-access redrive` with the queue URLs from the environment', async () => {
    // Prepare
    const queue = local.queues.accessChanges;
    const sender = createDeadLetterSender({ sqs: local.client, queueUrl: queue.dlqUrl });
    await sender.send([letterFactory(6, 'SVCSTG.SWR.4040010'), letterFactory(7, 'SCHEMA')], new Date());
    const out: string[] = [];
    const io: Partial<CliIo> = {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: () => true },
      env: { ACCESS_CHANGES_QUEUE_URL: queue.url, ACCESS_CHANGES_DLQ_URL: queue.dlqUrl },
      aws: { sqs: local.client },
    };

    // Act
    const code = await main(
      ['redrive', '--queue', 'access-changes', '--error-code', 'SVCSTG.SWR.4040010'],
      io,
    );
    const moved = await drainVisible(local.client, queue.url);

    // Assess
    expect(code).toBe(0);
    expect(out.join('')).toBe('redrive access-changes: 1 moved, 1 skipped, 0 failed\n');
    // access-changes is a standard queue: the copy goes back without group or dedup id.
    expect(moved.map((message) => [message.body, message.group, message.dedup])).toEqual([
      [letterFactory(6, '').body, undefined, undefined],
    ]);
  });
});

/** Every message now visible in a queue (bounded), as SQS hands it out. */
const receiveAll = async (sqs: SQSClient, url: string): Promise<Message[]> => {
  const found: Message[] = [];
  for (let round = 0; round < 20; round += 1) {
    const answer = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        MessageAttributeNames: ['All'],
        MessageSystemAttributeNames: ['MessageGroupId'],
        VisibilityTimeout: 60,
        WaitTimeSeconds: 0,
      }),
    );
    const messages = answer.Messages ?? [];
    if (messages.length === 0) break;
    found.push(...messages);
  }
  return found;
};

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');
const attributeOf = (message: Message | undefined, name: string): string | undefined =>
  message?.MessageAttributes?.[name]?.StringValue;
const bySource = (messages: Message[], source: string): Message | undefined =>
  messages.find((message) => attributeOf(message, 'sourceMessageId') === source);

/**
 * A letter with a body of about `bytes` ASCII bytes. Numbers are unique across this file: FIFO
 * queues drop a deduplication id seen in the last 5 minutes, purge or not.
 */
const sizedLetter = (n: number, bytes: number): DeadLetter => ({
  ...letterFactory(n, 'SCHEMA'),
  body: `{"id":"ev-${n}","pad":"${'p'.repeat(Math.max(0, bytes - 24))}"}`,
});

describe('dead letters of any size, on fauxqs', () => {
  it('sends letters to a standard DLQ without group or dedup id, each with its reason', async () => {
    // Prepare
    await purge();
    const queue = local.queues.accessChanges;
    const sender = createDeadLetterSender({ sqs: local.client, queueUrl: queue.dlqUrl });

    // Act
    const result = await sender.send(
      [letterFactory(201, 'SCHEMA'), letterFactory(202, 'UNKNOWN_USER')],
      new Date(),
    );
    const received = await receiveAll(local.client, queue.dlqUrl);

    // Assess
    expect(result.failed).toEqual([]);
    expect(received.map((message) => message.Attributes?.MessageGroupId)).toEqual([undefined, undefined]);
    expect(received.map((message) => attributeOf(message, 'errorCode')).sort()).toEqual([
      'SCHEMA',
      'UNKNOWN_USER',
    ]);
  });

  beforeEach(async () => {
    await purge();
  });

  it('keeps every reason: large letters split into batches, an oversized body shortened with its hash', async () => {
    // Prepare: five letters of 230 KB (over 1 MiB together) and one of 700 KB, to the FIFO DLQ
    const queue = local.queues.offboarding;
    const sender = createDeadLetterSender({ sqs: local.client, queueUrl: queue.dlqUrl });
    const letters = [
      ...[101, 102, 103, 104, 105].map((n) => sizedLetter(n, 230_000)),
      sizedLetter(106, 700_000),
    ];

    // Act
    const result = await sender.send(letters, new Date());
    const received = await receiveAll(local.client, queue.dlqUrl);

    // Assess
    expect(result).toMatchObject({ failed: [], shortened: ['source-msg-106'] });
    expect(result.sent).toHaveLength(6);
    expect(received).toHaveLength(6);
    for (const letter of letters) {
      const message = bySource(received, letter.messageId);
      expect(attributeOf(message, 'errorCode')).toBe('SCHEMA');
      expect(message?.Attributes?.MessageGroupId).toBe(letter.groupId);
    }
    expect(bySource(received, 'source-msg-101')?.Body).toBe(letters[0]?.body);
    const shortened = bySource(received, 'source-msg-106');
    expect(attributeOf(shortened, 'bodyTruncated')).toBe('true');
    expect(attributeOf(shortened, 'bodySha256')).toBe(sha256(letters[5]?.body ?? ''));
    expect(attributeOf(shortened, 'bodyBytes')).toBe(String(Buffer.byteLength(letters[5]?.body ?? '')));
    expect(letters[5]?.body.startsWith(shortened?.Body ?? 'x')).toBe(true);
  });

  it('falls back on what fauxqs enforces: a smaller MaximumMessageSize, the 1 MiB batch, its character set', async () => {
    // Prepare: a DLQ that takes at most 64 KiB per message, and a sender that believes in
    // 256 KiB messages and 4 MiB batches
    const created = await local.client.send(
      new CreateQueueCommand({
        QueueName: `small-dlq-${Date.now()}.fifo`,
        Attributes: { FifoQueue: 'true', ContentBasedDeduplication: 'false', MaximumMessageSize: '65536' },
      }),
    );
    const queueUrl = created.QueueUrl as string;
    const sender = createDeadLetterSender({
      sqs: local.client,
      queueUrl,
      limits: { batchBytes: 4 * 1024 * 1024 },
    });
    // fauxqs refuses characters outside the Basic Multilingual Plane (SQS takes them).
    const emoji = { ...letterFactory(7, 'SCHEMA'), body: '{"id":"ev-7","team":"🙂"}' };
    const letters = [
      sizedLetter(8, 200_000),
      sizedLetter(9, 30_000),
      emoji,
      ...[10, 11, 12, 13, 14].map((n) => sizedLetter(n, 230_000)),
    ];

    // Act
    const result = await sender.send(letters, new Date());
    const received = await receiveAll(local.client, queueUrl);

    // Assess: nothing lost, every letter with its reason
    expect(result.failed).toEqual([]);
    expect(result.sent).toHaveLength(letters.length);
    expect(result.minimal).toEqual(expect.arrayContaining(['source-msg-7', 'source-msg-8']));
    expect(received).toHaveLength(letters.length);
    for (const letter of letters)
      expect(attributeOf(bySource(received, letter.messageId), 'errorCode')).toBe('SCHEMA');
    expect(bySource(received, 'source-msg-9')?.Body).toBe(letters[1]?.body);
    expect(attributeOf(bySource(received, 'source-msg-7'), 'bodySha256')).toBe(sha256(emoji.body));
  });

  it('never redrives a shortened body as if it were the event: it stays in the DLQ, reported', async () => {
    // Prepare
    const queue = local.queues.offboarding;
    const sender = createDeadLetterSender({ sqs: local.client, queueUrl: queue.dlqUrl });
    const big = sizedLetter(15, 300_000);
    await sender.send([big, letterFactory(16, 'SCHEMA')], new Date());

    // Act
    const report = await redrive({ sqs: local.client, dlqUrl: queue.dlqUrl, sourceUrl: queue.url });
    const moved = await receiveAll(local.client, queue.url);
    const left = await receiveAll(local.client, queue.dlqUrl);

    // Assess
    expect(report).toMatchObject({ moved: 1, failed: 1 });
    const refused = report.entries.find((entry) => entry.status === 'failed');
    expect(refused?.reason).toMatch(
      new RegExp(
        `body was shortened .*original ${Buffer.byteLength(big.body)} bytes, sha256 ${sha256(big.body)}.*resend the original`,
      ),
    );
    expect(moved.map((message) => message.Body)).toEqual([letterFactory(16, '').body]);
    expect(left).toHaveLength(1);
    expect(attributeOf(left[0], 'bodyTruncated')).toBe('true');
  });
});

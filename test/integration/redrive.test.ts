import { PurgeQueueCommand, ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
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
    expect(moved.map((message) => message.group)).toEqual(['group-6']);
  });
});

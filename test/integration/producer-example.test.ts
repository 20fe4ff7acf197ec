/**
 * The example producer of docs/go-live.md, against fauxqs: the queue each type goes to, the group
 * and deduplication ids SQS receives, a resend dropped, and a name-only event refused.
 */
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProducerContractError, sendEvent, toSqsMessage } from '../../docs/examples/producer.ts';
import { type LocalSqs, startLocalSqs } from '../../lib/local/sqs.ts';

let sqs: LocalSqs;

beforeAll(async () => {
  sqs = await startLocalSqs();
});

afterAll(async () => {
  await sqs.stop();
});

const alice = 'a11ce000000000000000000000000001';

const receiveAll = async (url: string) => {
  const messages = [];
  for (let round = 0; round < 20; round += 1) {
    const answer = await sqs.client.send(
      new ReceiveMessageCommand({
        QueueUrl: url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        VisibilityTimeout: 60,
        MessageSystemAttributeNames: ['MessageGroupId', 'MessageDeduplicationId'],
      }),
    );
    if ((answer.Messages ?? []).length === 0) break;
    messages.push(...(answer.Messages ?? []));
  }
  return messages;
};

describe('the example producer (docs/examples/producer.ts)', () => {
  it('sends each event to its queue: offboardings grouped by the IAM user id and deduplicated, joins to the standard queue', async () => {
    // Prepare
    const urls = { accessChanges: sqs.queues.accessChanges.url, offboarding: sqs.queues.offboarding.url };
    const join = {
      id: 'hr-2026-000101',
      type: 'membership.added',
      occurredAt: '2026-11-20T10:00:00Z',
      user: { id: alice, name: 'alice' },
      team: 'platform',
    };
    const leaves = {
      id: 'hr-2026-000104',
      type: 'user.offboarded',
      occurredAt: '2026-11-20T10:15:00Z',
      user: { id: alice },
    };

    // Act
    const sent = [await sendEvent(sqs.client, urls, join), await sendEvent(sqs.client, urls, leaves)];
    await sendEvent(sqs.client, urls, leaves);
    const onAccessChanges = await receiveAll(urls.accessChanges);
    const onOffboarding = await receiveAll(urls.offboarding);

    // Assess
    expect(sent.map((entry) => entry.queue)).toEqual(['accessChanges', 'offboarding']);
    expect(onAccessChanges).toHaveLength(1);
    expect(onAccessChanges[0]?.Attributes?.MessageGroupId).toBeUndefined();
    expect(JSON.parse(onAccessChanges[0]?.Body ?? '{}')).toEqual(join);
    // The resent offboarding was dropped by SQS (same deduplication id).
    expect(onOffboarding.map((message) => message.Attributes?.MessageGroupId)).toEqual([alice]);
    expect(onOffboarding.map((message) => message.Attributes?.MessageDeduplicationId)).toEqual([
      'hr-2026-000104',
    ]);
  });

  it.each([
    [
      'a name-only user',
      { id: 'e1', type: 'membership.added', user: { name: 'alice' }, team: 'x' },
      /never a name/,
    ],
    [
      'an upper-case id',
      { id: 'e2', type: 'user.offboarded', user: { id: alice.toUpperCase() } },
      /IAM user id/,
    ],
    ['no event id', { type: 'user.offboarded', user: { id: alice } }, /has no id/],
  ])('refuses %s', (_case, event, message) => {
    // Act / Assess
    expect(() => toSqsMessage(event)).toThrow(ProducerContractError);
    expect(() => toSqsMessage(event)).toThrow(message);
  });

  it('hashes an event id SQS cannot take, the same way every time', () => {
    // Prepare
    const event = { id: 'workday:ünïcode id', type: 'user.offboarded', user: { id: alice } };

    // Act
    const first = toSqsMessage(event).dedupId;
    const again = toSqsMessage({ ...event }).dedupId;

    // Assess
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(again).toBe(first);
  });
});

/**
 * An example producer: what an HR or identity-provider integration does to hand a people event
 * to swr-access-sync (docs/go-live.md, "The producer contract"). Copy it, or do the same in your
 * language: the rules are in `toSqsMessage`.
 *
 *   ACCESS_CHANGES_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/swr-access-sync-prod-access-changes \
 *   OFFBOARDING_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/swr-access-sync-prod-offboarding.fifo \
 *   npx tsx docs/examples/producer.ts event.json
 *
 * It sends with the role's own credentials (the queue policy lets only the configured producer
 * principals send). Tested by test/integration/producer-example.test.ts against fauxqs.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';

interface QueueUrls {
  accessChanges: string;
  offboarding: string;
}

interface SqsMessage {
  queue: keyof QueueUrls;
  body: string;
  groupId: string;
  dedupId: string;
}

/** A producer-side mistake: the event is not sent (fix the integration, not the message). */
class ProducerContractError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProducerContractError';
  }
}

const iamUserId = /^[0-9a-f]{32}$/;
/** SQS takes 1–128 printable ASCII characters as a deduplication id. */
const sqsIdPattern = /^[\x21-\x7e]{1,128}$/;

/**
 * The contract, as code:
 * - queue: `user.offboarded` on the offboarding queue (never stuck behind a reorganisation);
 *   every other type on access-changes;
 * - the user: by IAM user id, always (a name can change or be reused; look the id up first);
 * - on the offboarding queue (FIFO): MessageGroupId = that id (FIFO order holds within a group
 *   only), MessageDeduplicationId = the event id, so a resend is dropped by SQS (an id SQS cannot
 *   take as it is goes as its SHA-256, the same id always giving the same hash);
 * - on access-changes (a standard queue: large batches, order from the facts' instants): neither;
 *   a resend is harmless, the store takes it as the same fact;
 * - body: the event as JSON, unchanged.
 *
 * @example toSqsMessage({ id: 'hr-1', type: 'user.offboarded', user: { id: 'fb3f…' }, … }).queue // 'offboarding'
 */
const toSqsMessage = (event: Record<string, unknown>): SqsMessage => {
  const id = event.id;
  if (typeof id !== 'string' || id === '') throw new ProducerContractError('the event has no id');
  const user = event.user as { id?: unknown } | undefined;
  if (typeof user?.id !== 'string' || !iamUserId.test(user.id))
    throw new ProducerContractError(
      `event ${id}: user.id must be the IAM user id (32 lowercase hex): the message group is always the user id, never a name`,
    );
  return {
    queue: event.type === 'user.offboarded' ? 'offboarding' : 'accessChanges',
    body: JSON.stringify(event),
    groupId: user.id,
    dedupId: sqsIdPattern.test(id) ? id : createHash('sha256').update(id).digest('hex'),
  };
};

/**
 * Sends one event. A failed send throws: send it again as it is (same deduplication id), and
 * keep each user's events in the order they happened.
 *
 * @example await sendEvent(new SQSClient({}), urls, event);
 */
const sendEvent = async (
  sqs: Pick<SQSClient, 'send'>,
  urls: QueueUrls,
  event: Record<string, unknown>,
): Promise<{ queue: keyof QueueUrls; messageId: string | undefined }> => {
  const message = toSqsMessage(event);
  const url = urls[message.queue];
  // Group and deduplication ids exist on FIFO queues only (a standard queue refuses a dedup id).
  const fifo = url.endsWith('.fifo');
  const answer = await sqs.send(
    new SendMessageCommand({
      QueueUrl: url,
      MessageBody: message.body,
      ...(fifo ? { MessageGroupId: message.groupId, MessageDeduplicationId: message.dedupId } : {}),
    }),
  );
  return { queue: message.queue, messageId: answer.MessageId };
};

const main = async (argv: string[]): Promise<void> => {
  const urls = {
    accessChanges: process.env.ACCESS_CHANGES_QUEUE_URL ?? '',
    offboarding: process.env.OFFBOARDING_QUEUE_URL ?? '',
  };
  if (argv.length !== 1 || urls.accessChanges === '' || urls.offboarding === '')
    throw new ProducerContractError(
      'usage: ACCESS_CHANGES_QUEUE_URL=… OFFBOARDING_QUEUE_URL=… npx tsx docs/examples/producer.ts EVENT.json',
    );
  const { SQSClient } = await import('@aws-sdk/client-sqs');
  const sqs = new SQSClient({});
  try {
    const event = JSON.parse(await readFile(argv[0] as string, 'utf8')) as Record<string, unknown>;
    const sent = await sendEvent(sqs, urls, event);
    process.stdout.write(`sent ${String(event.id)} to ${sent.queue} as ${sent.messageId}\n`);
  } finally {
    sqs.destroy();
  }
};

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });

export type { QueueUrls, SqsMessage };
export { ProducerContractError, sendEvent, toSqsMessage };

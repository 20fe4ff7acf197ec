/**
 * The queues and their dead-letter queues on an in-process fauxqs, created from the same
 * definitions as production (`config/queues.json`: `access-changes` a standard queue,
 * `offboarding` FIFO, `offboarding-sweeps` standard) through the real SQS API.
 *
 * What fauxqs 1.9 really does for FIFO queues (checked by test/integration/local-sqs.test.ts;
 * read from its source where a test cannot see it):
 * - One receive returns AT MOST ONE message per message group, even with several waiting and
 *   MaxNumberOfMessages 10 (real SQS returns several of one group in order). A batch therefore
 *   holds messages of distinct groups; the next message of a group comes in a later receive.
 * - A group stays locked while any of its messages is in flight: nothing more of that group is
 *   returned until the message is deleted or its visibility ends (like SQS).
 * - Redrive is checked at receive: the receive that would raise ApproximateReceiveCount above
 *   maxReceiveCount moves the message to the DLQ instead (like SQS). The moved message keeps its
 *   MessageId, body, group and dedup id, and keeps counting receives in the DLQ.
 * - MessageDeduplicationId is required when ContentBasedDeduplication is false (the entry fails
 *   with InvalidParameterValue in `Failed[]`, not a thrown error); a repeated id within 5 minutes
 *   is accepted, reported as success with the ORIGINAL MessageId and SequenceNumber, and not
 *   enqueued again. The scope is the queue, not the group.
 * - Expired in-flight messages return to the front of their group only when the queue is next
 *   received from (or long-polled), so `ApproximateNumberOfMessagesNotVisible` can still count
 *   them for a while after their visibility ended.
 * - DeleteMessageBatch never reports `Failed[]` (unknown receipt handles succeed silently);
 *   ChangeMessageVisibilityBatch reports unknown handles as `ReceiptHandleIsInvalid`.
 * - `startFauxqs()` listens on 0.0.0.0, so this module builds the app with `buildApp()` and
 *   listens on 127.0.0.1 itself.
 */
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { buildApp } from 'fauxqs';
import queuesConfig from '../../config/queues.json' with { type: 'json' };

const localRegion = 'us-east-1';

/** Fake, static credentials: fauxqs accepts any, and nothing local must ever use real ones. */
const localCredentials = { accessKeyId: 'local', secretAccessKey: 'local' } as const;

type QueueKey = keyof typeof queuesConfig.queues;
/** The queues producers send people events to (the sweep queue is fed by the handlers). */
type SourceQueueKey = Exclude<QueueKey, 'offboardingSweeps'>;

/** Everything a poller or producer needs to know about one source queue and its DLQ. */
interface QueueRefs {
  /** Source queue name (a FIFO queue's with its `.fifo` suffix). */
  name: string;
  /** FIFO (per-user order, dedup ids) or standard (large batches, a batching window). */
  fifo: boolean;
  url: string;
  arn: string;
  dlqName: string;
  dlqUrl: string;
  dlqArn: string;
  maxReceiveCount: number;
  batchSize: number;
  /** How long Lambda gathers a batch (standard queues only). */
  maximumBatchingWindowSeconds: number;
  maximumConcurrency: number;
  /** The function the queue feeds (`sync`, `offboard`). */
  functionName: string;
  visibilityTimeoutSeconds: number;
}

interface LocalSqs {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  client: SQSClient;
  queues: Record<QueueKey, QueueRefs>;
  /** Destroys the client and closes the server (open long polls are cut). */
  stop(): Promise<void>;
}

interface LocalSqsOptions {
  /** Overrides the configured visibility timeout, for fast local retries. */
  visibilityTimeoutSeconds?: number;
}

/**
 * An SQS client for a local endpoint: region us-east-1, fake static credentials.
 *
 * @example
 * const sqs = createSqsClient('http://127.0.0.1:4566');
 */
const createSqsClient = (endpoint: string): SQSClient =>
  new SQSClient({ region: localRegion, endpoint, credentials: localCredentials });

const queueArnOf = async (client: SQSClient, url: string): Promise<string> => {
  const answer = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
  );
  const arn = answer.Attributes?.QueueArn;
  if (arn === undefined) {
    throw new Error(`SQS returned no QueueArn for ${url}`);
  }
  return arn;
};

const createQueue = async (
  client: SQSClient,
  name: string,
  fifo: boolean,
  attributes: Record<string, string>,
): Promise<{ url: string; arn: string }> => {
  const created = await client.send(
    new CreateQueueCommand({
      QueueName: name,
      Attributes: fifo
        ? { FifoQueue: 'true', ContentBasedDeduplication: 'false', ...attributes }
        : attributes,
    }),
  );
  if (created.QueueUrl === undefined) {
    throw new Error(`SQS returned no QueueUrl for ${name}`);
  }
  return { url: created.QueueUrl, arn: await queueArnOf(client, created.QueueUrl) };
};

/**
 * Creates a source queue and its DLQ the way the infrastructure describes them: the DLQ of the
 * same kind as its source (FIFO with explicit dedup ids, or standard), redrive after
 * `maxReceiveCount` receives.
 */
const createQueuePair = async (
  client: SQSClient,
  key: QueueKey,
  visibilityTimeoutSeconds: number,
): Promise<QueueRefs> => {
  const definition = queuesConfig.queues[key];
  const fifo = definition.fifo;
  const suffix = fifo ? '.fifo' : '';
  const retention = String(queuesConfig.messageRetentionSeconds);
  const dlqName = `${definition.name}-dlq${suffix}`;
  const dlq = await createQueue(client, dlqName, fifo, { MessageRetentionPeriod: retention });
  const name = `${definition.name}${suffix}`;
  const source = await createQueue(client, name, fifo, {
    VisibilityTimeout: String(visibilityTimeoutSeconds),
    MessageRetentionPeriod: retention,
    RedrivePolicy: JSON.stringify({
      deadLetterTargetArn: dlq.arn,
      maxReceiveCount: String(definition.maxReceiveCount),
    }),
  });
  return {
    name,
    fifo,
    url: source.url,
    arn: source.arn,
    dlqName,
    dlqUrl: dlq.url,
    dlqArn: dlq.arn,
    maxReceiveCount: definition.maxReceiveCount,
    batchSize: definition.batchSize,
    maximumBatchingWindowSeconds: definition.maximumBatchingWindowSeconds,
    maximumConcurrency: definition.maximumConcurrency,
    functionName: definition.function,
    visibilityTimeoutSeconds,
  };
};

/**
 * Starts fauxqs in-process on 127.0.0.1 (a free port) and creates every queue pair of
 * `config/queues.json`.
 *
 * @example
 * const local = await startLocalSqs({ visibilityTimeoutSeconds: 2 });
 * await sendEvents(local.client, local.queues, events);
 * await local.stop();
 */
const startLocalSqs = async (options: LocalSqsOptions = {}): Promise<LocalSqs> => {
  const visibilityTimeoutSeconds = options.visibilityTimeoutSeconds ?? queuesConfig.visibilityTimeoutSeconds;
  const app = buildApp({ logger: false, defaultRegion: localRegion });
  let client: SQSClient | undefined;
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') {
      throw new Error('fauxqs is not listening on a TCP port');
    }
    const endpoint = `http://127.0.0.1:${address.port}`;
    const sqs = createSqsClient(endpoint);
    client = sqs;
    // Every queue of the file, as serverless.yml declares every one of them.
    const queues = {} as Record<QueueKey, QueueRefs>;
    for (const key of Object.keys(queuesConfig.queues) as QueueKey[])
      queues[key] = await createQueuePair(sqs, key, visibilityTimeoutSeconds);
    return {
      endpoint,
      client: sqs,
      queues,
      stop: async () => {
        sqs.destroy();
        await app.close();
      },
    };
  } catch (error) {
    client?.destroy();
    await app.close();
    throw error;
  }
};

export type { LocalSqs, LocalSqsOptions, QueueKey, QueueRefs, SourceQueueKey };
export { createSqsClient, localCredentials, localRegion, startLocalSqs };

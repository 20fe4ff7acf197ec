/**
 * ONE function instance in a process of its own (started by instance-process.ts, bundled by
 * esbuild with serverless.yml's options, run by plain `node` as Lambda runs the bundle): the real
 * handler wiring (`createSqsHandler` over `createQueueRuntime`, as `functions/*.ts`), talking to
 * the local stack's simulator, fauxqs and dynalite over HTTP like a Lambda instance talks to AWS,
 * invoked over IPC by the poller of the parent. Its resident memory is what one instance uses:
 * nothing else lives in this process (it imports no part of the local stack but the Lambda
 * context). It samples its RSS every 50 ms and reports the peak.
 *
 * Messages in: `{ kind: 'invoke', id, event, remainingMs }`, `{ kind: 'memory' }`,
 * `{ kind: 'reset-peak' }`. Messages out: `{ kind: 'ready' }`, `{ kind: 'answer', id, answer }`
 * or `{ kind: 'answer', id, error }`, `{ kind: 'memory', rss, peakRss, maxRss, atPeak }`.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import { createLambdaContext } from '../lib/local/lambda-context.ts';
import { createMemoryTelemetry, silentLog } from '../lib/observability.ts';
import { createQueueRuntime, type QueueName } from '../lib/runtime.ts';
import { createSqsHandler } from '../lib/sqs-handler.ts';

interface InstanceSetup {
  functionName: string;
  queue: QueueName;
  env: Record<string, string>;
  sqsEndpoint: string;
  dynamoEndpoint: string;
}

type Incoming =
  | { kind: 'invoke'; id: number; event: SQSEvent; remainingMs: number }
  | { kind: 'memory' }
  | { kind: 'reset-peak' };

const send = (message: unknown): void => {
  process.send?.(message);
};

const setup = JSON.parse(process.argv[2] ?? '{}') as InstanceSetup;
// The local endpoints take any credentials; these are fake and static, as the local stack's.
const local = { region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };
const handler = createSqsHandler(
  createQueueRuntime({
    functionName: setup.functionName,
    queue: setup.queue,
    env: setup.env,
    log: silentLog,
    metrics: createMemoryTelemetry().metrics,
    clients: {
      sqs: new SQSClient({ ...local, endpoint: setup.sqsEndpoint }),
      dynamo: new DynamoDBClient({ ...local, endpoint: setup.dynamoEndpoint }),
    },
  }),
);

/** The highest RSS sampled, and how the process's memory was split at that instant. */
let peak = process.memoryUsage();
const sample = (): NodeJS.MemoryUsage => {
  const now = process.memoryUsage();
  if (now.rss > peak.rss) peak = now;
  return now;
};
const sampler = setInterval(sample, 50);
sampler.unref();

process.on('message', (message: Incoming) => {
  if (message.kind === 'memory') {
    const now = sample();
    send({
      kind: 'memory',
      rss: now.rss,
      peakRss: peak.rss,
      maxRss: process.resourceUsage().maxRSS * 1024,
      atPeak: {
        heapUsed: peak.heapUsed,
        heapTotal: peak.heapTotal,
        external: peak.external,
        arrayBuffers: peak.arrayBuffers,
      },
    });
    return;
  }
  if (message.kind === 'reset-peak') {
    peak = process.memoryUsage();
    return;
  }
  const context = createLambdaContext(setup.functionName, message.remainingMs);
  handler(message.event, context).then(
    (answer) => send({ kind: 'answer', id: message.id, answer }),
    (error: unknown) =>
      send({ kind: 'answer', id: message.id, error: error instanceof Error ? error.name : 'error' }),
  );
});
process.on('disconnect', () => process.exit(0));
send({ kind: 'ready' });

/**
 * The decoupled offboarding sweep at the SQS handler interface: the offboard function's real
 * wiring (`createSqsHandler(createQueueRuntime(…))`, what `functions/offboard.ts` exports) over the
 * SWR/IAM simulator, dynalite and fauxqs. An offboarding batch revokes the known grants, sends the
 * sweep request to the `offboarding-sweeps` queue and is acknowledged with the sweep still
 * pending; the same handler, given the sweep queue's batch, revokes a grant made by hand on a
 * managed-namespace repository no team names. Several leavers' sweeps in one batch read each
 * target once (GETs counted at the simulator), and a request that cannot be sent fails the
 * offboarding message for a retry.
 */
import { DeleteMessageBatchCommand, type Message, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalDynamo, startLocalDynamo } from '../../lib/local/dynamo.ts';
import { createLambdaContext } from '../../lib/local/lambda-context.ts';
import { sqsEventOf, sqsRecordFactory } from '../../lib/local/lambda-events.ts';
import { simulatorEnv } from '../../lib/local/sim-services.ts';
import { type LocalSqs, startLocalSqs } from '../../lib/local/sqs.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { createQueueRuntime } from '../../lib/runtime.ts';
import { type Simulator, startSimulator } from '../../lib/sim/index.ts';
import { createSqsHandler } from '../../lib/sqs-handler.ts';
import { ensureTable } from '../../lib/store/index.ts';
import { extraUser, grantsOf, peopleEventFactory, seedWithExtraUsers } from '../support/stack.ts';

const tableName = 'offboarding-sweeps';
const policyFile = 'config/demo-policy.yaml';
/** A repository of the managed namespace `core` that no team of the demo policy names. */
const handMade = { kind: 'repo', namespace: 'core', repository: 'legacy/tool' } as const;

let sim: Simulator;
let dynamo: LocalDynamo;
let sqs: LocalSqs;

beforeAll(async () => {
  sim = await startSimulator({ seed: seedWithExtraUsers(16) });
  sim.addRepository('core', 'legacy/tool');
  dynamo = await startLocalDynamo();
  sqs = await startLocalSqs({ visibilityTimeoutSeconds: 5 });
  await ensureTable(dynamo.client, tableName);
});

afterAll(async () => {
  await sqs?.stop();
  await dynamo?.stop();
  await sim?.close();
});

const envOf = (overrides: Record<string, string> = {}) => ({
  ...simulatorEnv(sim),
  TABLE_NAME: tableName,
  ACCESS_CHANGES_DLQ_URL: sqs.queues.accessChanges.dlqUrl,
  OFFBOARDING_DLQ_URL: sqs.queues.offboarding.dlqUrl,
  OFFBOARDING_SWEEPS_DLQ_URL: sqs.queues.offboardingSweeps.dlqUrl,
  OFFBOARDING_SWEEPS_QUEUE_URL: sqs.queues.offboardingSweeps.url,
  POLICY_FILE: policyFile,
  RETRY_BASE_DELAY_MS: '20',
  RETRY_MAX_DELAY_MS: '200',
  SAFETY_MARGIN_MS: '2000',
  ...overrides,
});

/** The offboard function as deployed: one runtime, both of its event sources. */
const offboardFunction = (overrides: Record<string, string> = {}) => {
  const telemetry = createMemoryTelemetry();
  const handler = createSqsHandler(
    createQueueRuntime({
      functionName: 'offboard',
      queue: 'offboarding',
      env: envOf(overrides),
      log: telemetry.log,
      metrics: telemetry.metrics,
      clients: { sqs: sqs.client, dynamo: dynamo.client },
    }),
  );
  const invoke = async (event: SQSEvent): Promise<SQSBatchResponse> => {
    const context: Context = createLambdaContext('swr-access-sync-test-offboard', 60_000);
    return (await handler(event, context)) as SQSBatchResponse;
  };
  return { telemetry, invoke };
};

const offboardingEvent = (bodies: ReadonlyArray<{ id: string; user: { id?: string } }>): SQSEvent =>
  sqsEventOf(
    bodies.map((body) =>
      sqsRecordFactory({
        body: JSON.stringify(body),
        groupId: body.user.id ?? 'unknown',
        dedupId: body.id,
        queueArn: sqs.queues.offboarding.arn,
      }),
    ),
  );

/** The sweep queue's batch, as Lambda builds it from what was received. */
const sweepEvent = (messages: readonly Message[]): SQSEvent =>
  sqsEventOf(
    messages.map((message) =>
      sqsRecordFactory({
        body: message.Body ?? '',
        messageId: message.MessageId ?? '',
        queueArn: sqs.queues.offboardingSweeps.arn,
      }),
    ),
  );

/** Receives (and deletes) every sweep request waiting. */
const takeSweepRequests = async (): Promise<Message[]> => {
  const taken: Message[] = [];
  for (let round = 0; round < 20; round += 1) {
    const answer = await sqs.client.send(
      new ReceiveMessageCommand({
        QueueUrl: sqs.queues.offboardingSweeps.url,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 0,
        VisibilityTimeout: 30,
      }),
    );
    const messages = answer.Messages ?? [];
    if (messages.length === 0) break;
    taken.push(...messages);
    await sqs.client.send(
      new DeleteMessageBatchCommand({
        QueueUrl: sqs.queues.offboardingSweeps.url,
        Entries: messages.map((message, index) => ({
          Id: String(index),
          ReceiptHandle: message.ReceiptHandle,
        })),
      }),
    );
  }
  return taken;
};

/** Grants users the platform team through the same handler (a join on any queue is applied). */
const joinPlatform = async (invoke: (event: SQSEvent) => Promise<SQSBatchResponse>, userIds: string[]) => {
  const events = peopleEventFactory({ prefix: `join-${userIds.join('-').slice(0, 16)}` });
  const response = await invoke(
    sqsEventOf(
      userIds.map((id) =>
        sqsRecordFactory({
          body: JSON.stringify(events.join({ id }, 'platform')),
          queueArn: sqs.queues.accessChanges.arn,
        }),
      ),
    ),
  );
  expect(response.batchItemFailures).toEqual([]);
};

describe('offboarding through the offboard handler and its sweep queue', () => {
  it('acknowledges the offboarding once the known grants are revoked, with the sweep pending; the sweep batch revokes a hand-made grant', async () => {
    // Prepare
    const user = extraUser(1);
    const { invoke, telemetry } = offboardFunction();
    await joinPlatform(invoke, [user.id]);
    sim.setPermission(handMade, user.id, 3);
    const leave = peopleEventFactory({ prefix: 'sweep-1' }).offboard({ id: user.id });

    // Act: the offboarding queue's batch
    const offboarded = await invoke(offboardingEvent([leave]));

    // Assess: acknowledged; nothing the platform team gives is left, the hand-made grant is
    const held = grantsOf(sim.permissions(), user.id);
    expect(offboarded.batchItemFailures).toEqual([]);
    expect(held).toEqual({ 'core/legacy/tool': 3 });
    const requests = await takeSweepRequests();
    expect(requests.map((message) => JSON.parse(message.Body ?? '{}'))).toEqual([
      { kind: 'offboarding.sweep', userId: user.id, offboardedAt: leave.occurredAt },
    ]);

    // Act: the sweep queue's batch, to the same function
    const swept = await invoke(sweepEvent(requests));

    // Assess
    expect(swept.batchItemFailures).toEqual([]);
    expect(grantsOf(sim.permissions(), user.id)).toEqual({});
    const proof = telemetry.lines.find((line) => line.message === 'offboarding proven');
    expect(proof).toMatchObject({ userId: user.id, offboardedAt: leave.occurredAt });
    expect(telemetry.lines.filter((line) => line.level === 'ERROR')).toEqual([]);
  });

  it('sweeps several leavers in one batch reading each target once at the simulator', async () => {
    // Prepare
    const users = [extraUser(2), extraUser(3), extraUser(4), extraUser(5)];
    const { invoke } = offboardFunction();
    await joinPlatform(
      invoke,
      users.map((user) => user.id),
    );
    for (const user of users) sim.setPermission(handMade, user.id, 1);
    const events = peopleEventFactory({ prefix: 'sweep-many' });
    const offboarded = await invoke(offboardingEvent(users.map((user) => events.offboard({ id: user.id }))));
    expect(offboarded.batchItemFailures).toEqual([]);
    const requests = await takeSweepRequests();
    sim.resetCounts();
    const startedAt = Date.now();

    // Act
    const swept = await invoke(sweepEvent(requests));

    // Assess: each target GET once (the read-back of a target written is the one more GET)
    expect(swept.batchItemFailures).toEqual([]);
    for (const user of users) expect(grantsOf(sim.permissions(), user.id)).toEqual({});
    const log = sim.requestLog().filter((entry) => entry.at >= startedAt);
    const gets = new Map<string, number>();
    for (const entry of log)
      if (entry.method === 'GET' && entry.route.endsWith('/access'))
        gets.set(entry.path, (gets.get(entry.path) ?? 0) + 1);
    const writes = new Set(log.filter((entry) => entry.method !== 'GET').map((entry) => entry.path));
    expect(requests).toHaveLength(users.length);
    expect(writes.size).toBeGreaterThan(0);
    expect(gets.size).toBeGreaterThan(10);
    for (const [path, count] of gets) expect(count).toBe(writes.has(path) ? 2 : 1);
  });

  it.each([
    [
      'a queue that does not exist',
      { OFFBOARDING_SWEEPS_QUEUE_URL: 'http://127.0.0.1:1/000000000000/no-such-queue' },
    ],
  ])(
    'fails the offboarding message for a retry when the sweep request cannot be sent (%s), the known grants revoked',
    async (_, overrides) => {
      // Prepare
      const user = extraUser(6);
      const { invoke, telemetry } = offboardFunction(overrides);
      await joinPlatform(invoke, [user.id]);
      const leave = peopleEventFactory({ prefix: 'sweep-fail' }).offboard({ id: user.id });
      const event = offboardingEvent([leave]);

      // Act
      const response = await invoke(event);

      // Assess
      expect(response.batchItemFailures).toEqual([{ itemIdentifier: event.Records[0]?.messageId }]);
      expect(grantsOf(sim.permissions(), user.id)).toEqual({});
      const retried = telemetry.lines.find((line) => line.message === 'message will be retried');
      expect(retried?.errorCode).toBe('NETWORK');
      expect(String(retried?.reason)).toMatch(/sweep request could not be queued/);
    },
  );
});

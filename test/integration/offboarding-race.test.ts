/**
 * "No grant survives offboarding" (design, semantics 4) across the two handlers: the sync and the
 * offboard pipelines share one DynamoDB store (dynalite) and the SWR/IAM simulator, each with its
 * own real undici client, as two Lambda instances would. The sync pipeline re-reads the user's
 * store version after its grants and plans again when it moved; these tests hold the sync run at
 * chosen points, run a whole offboarding meanwhile, and check that nothing is left.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPolicyFile } from '../../lib/core/policy.ts';
import type { IamUser, Policy, SwrPermissionsPort } from '../../lib/domain.ts';
import { type LocalDynamo, startLocalDynamo } from '../../lib/local/dynamo.ts';
import { createLambdaContext } from '../../lib/local/lambda-context.ts';
import { sqsEventOf, sqsRecordFactory } from '../../lib/local/lambda-events.ts';
import { simulatorEnv, simulatorServices } from '../../lib/local/sim-services.ts';
import { type LocalSqs, startLocalSqs } from '../../lib/local/sqs.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import {
  type BatchReport,
  type PipelineDeps,
  type PipelineRecord,
  processRecords,
} from '../../lib/pipeline.ts';

import { createQueueRuntime } from '../../lib/runtime.ts';
import { type Simulator, startSimulator } from '../../lib/sim/index.ts';
import { createSqsHandler, type QueueRuntime } from '../../lib/sqs-handler.ts';
import { createDynamoStore, ensureTable } from '../../lib/store/index.ts';
import type { SwrServices } from '../../lib/swr/index.ts';
import {
  extraUser,
  gateSwr,
  grantsOf,
  jitterSwr,
  memoryDeadLetters,
  PausePoints,
  peopleEventFactory,
  seededRandom,
  seedWithExtraUsers,
} from '../support/stack.ts';

const tableName = 'offboarding-race';
const policyFile = 'config/demo-policy.yaml';
const teams = ['platform', 'backend', 'frontend', 'data', 'security', 'sre'] as const;
/** Redeliveries of a retried message before the test gives up (SQS would go on to maxReceiveCount). */
const maxDeliveries = 5;

let sim: Simulator;
let dynamo: LocalDynamo;
let sqs: LocalSqs;
let policy: Policy;
const services: SwrServices[] = [];

beforeAll(async () => {
  sim = await startSimulator({ seed: seedWithExtraUsers(64) });
  dynamo = await startLocalDynamo();
  sqs = await startLocalSqs({ visibilityTimeoutSeconds: 5 });
  await ensureTable(dynamo.client, tableName);
  policy = await loadPolicyFile(policyFile);
});

afterAll(async () => {
  for (const service of services) await service.close();
  await sqs?.stop();
  await dynamo?.stop();
  await sim?.close();
});

/** One instance of a queue function: its own SWR client, store adapter and telemetry. */
const functionFactory = (actor: 'sync' | 'offboard') => {
  const service = simulatorServices(sim, { retry: { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200 } });
  services.push(service);
  const telemetry = createMemoryTelemetry();
  const deadLetters = memoryDeadLetters();
  const deps: PipelineDeps = {
    swr: service.swr,
    directory: service.users,
    store: createDynamoStore({ client: dynamo.client, tableName }),
    policy,
    deadLetters,
    log: telemetry.log,
    metrics: telemetry.metrics,
    now: () => new Date(),
  };
  const run = (records: readonly PipelineRecord[], swr: SwrPermissionsPort = service.swr) =>
    processRecords(records, { ...deps, swr }, { actor, concurrency: 8, dryRun: false }, Date.now() + 60_000);
  return { run, swr: service.swr, telemetry, deadLetters };
};

let messageCounter = 0;

/** A queue message carrying `event`, grouped by its user as the producer does. */
const recordOf = (event: { user: { id?: string } }, receiveCount = 1): PipelineRecord => {
  messageCounter += 1;
  return {
    messageId: `m-${messageCounter}`,
    groupId: event.user.id,
    body: JSON.stringify(event),
    receiveCount,
  };
};

/**
 * Checks that every message of the batch was applied or handed back for a retry (none lost, none
 * dead-lettered), and delivers the retried ones again, as SQS would, until they are applied.
 */
const settle = async (
  report: BatchReport,
  records: readonly PipelineRecord[],
  run: (records: readonly PipelineRecord[]) => Promise<BatchReport>,
): Promise<{ deliveries: number }> => {
  let current = report;
  let pending = records;
  for (let delivery = 1; ; delivery += 1) {
    expect(current.deadLettered).toEqual([]);
    expect(current.undeliverable).toEqual([]);
    const retried = new Set(current.retried.map((failure) => failure.messageId));
    expect([...current.applied, ...retried].sort()).toEqual(pending.map((record) => record.messageId).sort());
    if (retried.size === 0) return { deliveries: delivery };
    if (delivery >= maxDeliveries) throw new Error(`still retried after ${maxDeliveries} deliveries`);
    pending = pending
      .filter((record) => retried.has(record.messageId))
      .map((record) => ({ ...record, receiveCount: record.receiveCount + 1 }));
    current = await run(pending);
  }
};

/** Fails the test instead of hanging when a promise does not settle in time. */
const bounded = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    promise,
    sleep(ms, undefined, { ref: false }).then(() => {
      throw new Error(`${what} did not happen within ${ms} ms`);
    }),
  ]);

describe('no grant survives offboarding: the sync run held at each point', () => {
  const events = peopleEventFactory();

  it.each([
    { point: PausePoints.beforeFirstRead, user: extraUser(1), heldWithGrants: false },
    { point: PausePoints.beforeFirstWrite, user: extraUser(2), heldWithGrants: false },
    { point: PausePoints.afterGrant, user: extraUser(3), heldWithGrants: true },
  ])(
    'offboarding while the sync run is held $point leaves no grant',
    async ({ point, user, heldWithGrants }) => {
      // Prepare
      const sync = functionFactory('sync');
      const offboard = functionFactory('offboard');
      const join = recordOf(events.join({ id: user.id }, 'platform'));
      const leave = recordOf(events.offboard({ id: user.id }));
      const gated = gateSwr(sync.swr, point);

      // Act
      const syncRun = sync.run([join], gated);
      await bounded(
        Promise.race([
          gated.reached,
          syncRun.then(() => {
            throw new Error(`the sync run finished without reaching ${point}`);
          }),
        ]),
        20_000,
        `the pause ${point}`,
      );
      const grantsWhileHeld = grantsOf(sim.permissions(), user.id);
      const offboardReport = await offboard.run([leave]);
      const afterOffboarding = grantsOf(sim.permissions(), user.id);
      gated.release();
      const syncReport = await bounded(syncRun, 30_000, 'the end of the sync run');
      await settle(syncReport, [join], (records) => sync.run(records));

      // Assess
      expect(Object.keys(grantsWhileHeld).length > 0).toBe(heldWithGrants);
      expect(offboardReport.applied).toEqual([leave.messageId]);
      expect(afterOffboarding).toEqual({});
      expect(grantsOf(sim.permissions(), user.id)).toEqual({});
      expect(sync.telemetry.counters.get(MetricNames.replans) ?? 0).toBeGreaterThan(0);
      const record = await createDynamoStore({ client: dynamo.client, tableName }).get(user.id);
      expect(record?.offboardedAt).toBeDefined();
      expect([...sync.deadLetters.letters, ...offboard.deadLetters.letters]).toEqual([]);
    },
  );
});

describe('no grant survives offboarding: concurrent batches with random timing', () => {
  const runs = 30;
  const firstUser = 10;

  it(`ends with no grant in each of ${runs} seeded runs where the offboarding is the newest fact`, async () => {
    const outcomes: Array<{ run: number; seed: number; grants: Record<string, number> }> = [];
    const orders: string[] = [];
    for (let run = 0; run < runs; run += 1) {
      // Prepare
      const seed = 0x5eed + run;
      const random = seededRandom(seed);
      const user: IamUser = extraUser(firstUser + run);
      const events = peopleEventFactory({ prefix: `race-${seed}` });
      const joins = Array.from({ length: 1 + Math.floor(random() * 3) }, () =>
        recordOf(events.join({ id: user.id }, teams[Math.floor(random() * teams.length)] ?? 'platform')),
      );
      const leave = recordOf(events.offboard({ id: user.id }));
      const sync = functionFactory('sync');
      const offboard = functionFactory('offboard');
      const syncSwr = jitterSwr(sync.swr, random, 15);
      const offboardSwr = jitterSwr(offboard.swr, random, 15);
      sim.setFaults({ latencyMs: Math.floor(random() * 6) });
      const syncDelay = Math.floor(random() * 40);
      const offboardDelay = Math.floor(random() * 40);

      // Act
      const [syncReport, offboardReport] = await bounded(
        Promise.all([
          sleep(syncDelay).then(() => sync.run(joins, syncSwr)),
          sleep(offboardDelay).then(() => offboard.run([leave], offboardSwr)),
        ]),
        60_000,
        `run ${run} (seed ${seed})`,
      );
      await settle(syncReport, joins, (records) => sync.run(records, syncSwr));
      await settle(offboardReport, [leave], (records) => offboard.run(records, offboardSwr));
      outcomes.push({ run, seed, grants: grantsOf(sim.permissions(), user.id) });
      orders.push(
        sync.telemetry.counters.has(MetricNames.replans)
          ? 'sync re-planned'
          : sync.telemetry.counters.has(MetricNames.staleEvents)
            ? 'joins stale'
            : 'other',
      );
    }
    sim.setFaults({ latencyMs: 0 });

    // Assess
    expect(outcomes.filter((outcome) => Object.keys(outcome.grants).length > 0)).toEqual([]);
    expect(outcomes).toHaveLength(runs);
    // The timing really varied: some offboardings came first (joins stale), some mid-run.
    expect(orders).toEqual(expect.arrayContaining(['sync re-planned', 'joins stale']));
  }, 120_000);
});

describe('no grant survives offboarding: the real handlers invoked concurrently', () => {
  it('leaves no grant when the offboard handler runs while the sync handler is about to grant', async () => {
    // Prepare
    const user = extraUser(60);
    const events = peopleEventFactory({ prefix: 'handlers' });
    const telemetry = createMemoryTelemetry();
    const env = {
      ...simulatorEnv(sim),
      TABLE_NAME: tableName,
      ACCESS_CHANGES_DLQ_URL: sqs.queues.accessChanges.dlqUrl,
      OFFBOARDING_DLQ_URL: sqs.queues.offboarding.dlqUrl,
      POLICY_FILE: policyFile,
      RETRY_BASE_DELAY_MS: '20',
      RETRY_MAX_DELAY_MS: '200',
      SAFETY_MARGIN_MS: '2000',
    };
    const runtimeOf = (functionName: 'sync' | 'offboard') =>
      createQueueRuntime({
        functionName,
        queue: functionName === 'sync' ? 'accessChanges' : 'offboarding',
        env,
        log: telemetry.log,
        metrics: telemetry.metrics,
        clients: { sqs: sqs.client, dynamo: dynamo.client },
      });
    // The sync function's own SWR client (built once per cold start), held before its first write.
    const syncRuntime = runtimeOf('sync');
    const built = await syncRuntime.ready();
    const gated = gateSwr(built.deps.swr, PausePoints.beforeFirstWrite);
    const heldRuntime: QueueRuntime = {
      log: syncRuntime.log,
      metrics: syncRuntime.metrics,
      ready: async () => ({ ...built, deps: { ...built.deps, swr: gated } }),
    };
    const handlers = {
      sync: createSqsHandler(heldRuntime),
      offboard: createSqsHandler(runtimeOf('offboard')),
    };
    const joins = [events.join({ id: user.id }, 'platform'), events.join({ id: user.id }, 'sre')];
    const leave = events.offboard({ id: user.id });
    const eventOf = (
      queue: 'accessChanges' | 'offboarding',
      bodies: ReadonlyArray<{ id: string }>,
      receiveCount: number,
    ): SQSEvent =>
      sqsEventOf(
        bodies.map((body) =>
          sqsRecordFactory({
            body: JSON.stringify(body),
            // Group and dedup ids on the FIFO queue (offboarding) only.
            ...(sqs.queues[queue].fifo ? { groupId: user.id, dedupId: body.id } : {}),
            queueArn: sqs.queues[queue].arn,
            receiveCount,
          }),
        ),
      );
    // As Lambda does: the batch's messages, the failed ones delivered again.
    const invokeUntilDone = async (
      functionName: 'sync' | 'offboard',
      queue: 'accessChanges' | 'offboarding',
      bodies: ReadonlyArray<{ id: string }>,
    ): Promise<number> => {
      let pending = bodies;
      for (let delivery = 1; delivery <= maxDeliveries; delivery += 1) {
        const event = eventOf(queue, pending, delivery);
        const context: Context = createLambdaContext(`swr-access-sync-test-${functionName}`, 60_000);
        const response = (await handlers[functionName](event, context)) as SQSBatchResponse;
        const failed = new Set(response.batchItemFailures.map((failure) => failure.itemIdentifier));
        pending = pending.filter((_, index) => failed.has(event.Records[index]?.messageId ?? ''));
        if (pending.length === 0) return delivery;
      }
      throw new Error(`${functionName}: messages still failing after ${maxDeliveries} deliveries`);
    };
    const store = createDynamoStore({ client: dynamo.client, tableName });

    // Act
    const syncDone = invokeUntilDone('sync', 'accessChanges', joins);
    await bounded(
      Promise.race([
        gated.reached,
        syncDone.then(() => {
          throw new Error('the sync invocation finished without writing');
        }),
      ]),
      20_000,
      'the sync invocation reaching its first write',
    );
    const offboardDone = invokeUntilDone('offboard', 'offboarding', [leave]);
    // Both invocations are in flight; the offboarding finishes first, then the sync one goes on.
    await bounded(offboardDone, 30_000, 'the offboard invocation');
    const afterOffboarding = grantsOf(sim.permissions(), user.id);
    gated.release();
    await bounded(syncDone, 30_000, 'the sync invocation');

    // Assess
    expect(afterOffboarding).toEqual({});
    expect(grantsOf(sim.permissions(), user.id)).toEqual({});
    expect(telemetry.counters.get(MetricNames.replans) ?? 0).toBeGreaterThan(0);
    const record = await store.get(user.id);
    expect(record?.offboardedAt).toBe(leave.occurredAt);
    // The joins were written, then the tombstone decided them (their markers are compacted away).
    expect(record?.version).toBeGreaterThanOrEqual(2);
    expect(Object.values(record?.teams ?? {}).filter((fact) => fact.member)).toEqual([]);
    expect(telemetry.counters.get(MetricNames.deadLettered) ?? 0).toBe(0);
    expect(telemetry.lines.filter((line) => line.level === 'ERROR')).toEqual([]);
    for (const queue of Object.values(sqs.queues)) {
      const letters = await sqs.client.send(
        new ReceiveMessageCommand({ QueueUrl: queue.dlqUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }),
      );
      expect(letters.Messages ?? []).toEqual([]);
    }
  });
});

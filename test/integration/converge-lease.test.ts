/**
 * Two access-changes instances (each its own SWR client) over one membership store and one
 * converge lease, against the SWR/IAM simulator: they record their batches in parallel and
 * converge one after another. What SWR ends up holding is compared with an independent reference
 * model (test/support/reference-model.ts) and with what the store's final records give; writes
 * are counted at each instance's SWR port and at the simulator.
 * The last part drives the real handlers (`createQueueRuntime`, DynamoDB on dynalite): the
 * offboarding function never waits for the lease, the sync function gives up at its deadline.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPolicyFile } from '../../lib/core/policy.ts';
import type {
  AuthLevel,
  IamUser,
  LeasePort,
  MembershipStorePort,
  Policy,
  SwrPermissionsPort,
  UserRecord,
} from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import { ErrorCodes } from '../../lib/errors.ts';
import { type LocalDynamo, startLocalDynamo } from '../../lib/local/dynamo.ts';
import { createLambdaContext } from '../../lib/local/lambda-context.ts';
import { sqsEventOf, sqsRecordFactory } from '../../lib/local/lambda-events.ts';
import { simulatorEnv, simulatorServices } from '../../lib/local/sim-services.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import { convergeLeaseName } from '../../lib/pipeline/apply.ts';
import {
  type BatchReport,
  type PipelineDeps,
  type PipelineRecord,
  processRecords,
} from '../../lib/pipeline.ts';
import { createQueueRuntime } from '../../lib/runtime.ts';
import { type Simulator, startSimulator } from '../../lib/sim/index.ts';
import { createSqsHandler } from '../../lib/sqs-handler.ts';
import { createMemoryStore, ensureTable } from '../../lib/store/index.ts';
import { createDynamoLease, createMemoryLease } from '../../lib/store/lease.ts';
import type { SwrServices } from '../../lib/swr/index.ts';
import {
  expectedPermissions,
  type ModelEvent,
  type ModelPolicy,
  type Permissions,
  policyTargetKeys,
} from '../support/reference-model.ts';
import { extraUser, grantsOf, seedWithExtraUsers, writesIn } from '../support/stack.ts';

const policyFile = 'config/demo-policy.yaml';
const teams = ['platform', 'backend', 'frontend', 'data', 'security', 'sre'] as const;
/** Deliveries of a retried message before the test gives up (SQS would go on to maxReceiveCount). */
const maxDeliveries = 5;

let sim: Simulator;
let policy: Policy;
let modelPolicy: ModelPolicy;
let policyKeys: string[];
const services: SwrServices[] = [];

/** The policy file in the reference model's plain shape (team → target key → level). */
const modelPolicyOf = (loaded: Policy): ModelPolicy => ({
  protectedUsers: loaded.protectedUsers,
  teams: Object.fromEntries(
    Object.entries(loaded.teams).map(([team, grants]) => {
      const levels: Record<string, AuthLevel> = {};
      for (const grant of grants) {
        const key = targetKey(grant.target);
        levels[key] = Math.max(levels[key] ?? 0, grant.level) as AuthLevel;
      }
      return [team, levels];
    }),
  ),
});

beforeAll(async () => {
  sim = await startSimulator({ seed: seedWithExtraUsers(40) });
  policy = await loadPolicyFile(policyFile);
  modelPolicy = modelPolicyOf(policy);
  policyKeys = policyTargetKeys(modelPolicy);
});

afterAll(async () => {
  for (const service of services.splice(0)) await service.close();
  await sim?.close();
});

/** An SWR port that counts its writes (`METHOD target`) and may pause before each call. */
const countingSwr = (
  swr: SwrPermissionsPort,
  writes: string[],
  pause: () => Promise<void> = async () => undefined,
): SwrPermissionsPort => ({
  getAccess: async (target, options) => {
    await pause();
    return swr.getAccess(target, options);
  },
  grant: async (target, users, options) => {
    await pause();
    writes.push(`POST ${targetKey(target)}`);
    return swr.grant(target, users, options);
  },
  change: async (target, users, options) => {
    await pause();
    writes.push(`PATCH ${targetKey(target)}`);
    return swr.change(target, users, options);
  },
  revoke: async (target, userIds, options) => {
    await pause();
    writes.push(`DELETE ${targetKey(target)}`);
    return swr.revoke(target, userIds, options);
  },
  listRepositories: (namespace, options) => swr.listRepositories(namespace, options),
});

interface Instance {
  name: string;
  writes: string[];
  telemetry: ReturnType<typeof createMemoryTelemetry>;
  run(records: readonly PipelineRecord[], deadline?: number): Promise<BatchReport>;
}

/** One sync instance: its own SWR client and telemetry, the shared store and lease. */
const instanceFactory = (
  name: string,
  store: MembershipStorePort,
  lease: LeasePort | undefined,
  pause?: () => Promise<void>,
): Instance => {
  const service = simulatorServices(sim, { retry: { maxAttempts: 4, baseDelayMs: 20, maxDelayMs: 200 } });
  services.push(service);
  const telemetry = createMemoryTelemetry();
  const writes: string[] = [];
  const deps: PipelineDeps = {
    swr: countingSwr(service.swr, writes, pause),
    directory: service.users,
    store,
    policy,
    deadLetters: undefined,
    log: telemetry.log,
    metrics: telemetry.metrics,
    ...(lease === undefined ? {} : { convergeLease: lease }),
    now: () => new Date(),
  };
  return {
    name,
    writes,
    telemetry,
    run: (records, deadline = Date.now() + 30_000) =>
      processRecords(records, deps, { actor: name, concurrency: 4, dryRun: false }, deadline),
  };
};

/** Delivers the retried messages again, as SQS would, until every one is applied. */
const runUntilApplied = async (instance: Instance, records: readonly PipelineRecord[]): Promise<number> => {
  let pending = records;
  for (let delivery = 1; delivery <= maxDeliveries; delivery += 1) {
    const report = await instance.run(pending);
    expect(report.deadLettered).toEqual([]);
    expect(report.undeliverable).toEqual([]);
    const retried = new Set(report.retried.map((failure) => failure.messageId));
    if (retried.size === 0) return delivery;
    pending = pending
      .filter((record) => retried.has(record.messageId))
      .map((record) => ({ ...record, receiveCount: record.receiveCount + 1 }));
  }
  throw new Error(`${instance.name}: messages still retried after ${maxDeliveries} deliveries`);
};

/** Every policy target emptied of these users, so each case starts from nothing. */
const clearUsers = (users: readonly IamUser[]): void => {
  for (const user of users)
    for (const grants of Object.values(policy.teams))
      for (const grant of grants) sim.setPermission(grant.target, user.id, undefined);
};

const emptyPermissions = (): Permissions => ({ repos: {}, namespaces: {} });

/** What the reference model says each user holds on the policy's targets. */
const expectedByUser = (events: readonly ModelEvent[], users: readonly IamUser[]) => {
  const want = expectedPermissions({ policy: modelPolicy, initial: emptyPermissions(), events });
  return Object.fromEntries(users.map((user) => [user.name, grantsOf(want, user.id)]));
};

const heldByUser = (users: readonly IamUser[]) => {
  const snapshot = sim.permissions();
  return Object.fromEntries(
    users.map((user) => {
      const held = grantsOf(snapshot, user.id);
      return [
        user.name,
        Object.fromEntries(Object.entries(held).filter(([key]) => policyKeys.includes(key))),
      ];
    }),
  );
};

/**
 * What the store's final record of a user gives, read plainly: the highest level of the teams it
 * is a member of after its tombstone (none at all while offboarded and not rehired).
 */
const givenByRecord = (record: UserRecord | undefined): Record<string, AuthLevel> => {
  const given: Record<string, AuthLevel> = {};
  if (record === undefined) return given;
  const tombstone =
    record.offboardedAt === undefined ? Number.NEGATIVE_INFINITY : Date.parse(record.offboardedAt);
  for (const [team, fact] of Object.entries(record.teams)) {
    if (!fact.member || Date.parse(fact.at) <= tombstone) continue;
    for (const [key, level] of Object.entries(modelPolicy.teams[team] ?? {}))
      given[key] = Math.max(given[key] ?? 0, level) as AuthLevel;
  }
  return given;
};

let messageCounter = 0;

/** The wire body of a model event (user by id and name, as the producer sends it). */
const recordOf = (event: ModelEvent, user: IamUser): PipelineRecord => {
  messageCounter += 1;
  const { userId: _userId, ...rest } = event;
  return {
    messageId: `lease-m-${messageCounter}`,
    groupId: user.id,
    body: JSON.stringify({ ...rest, user: { id: user.id, name: user.name }, source: 'converge-lease-test' }),
    receiveCount: 1,
  };
};

const at = (minute: number): string => new Date(Date.UTC(2026, 9, 1, 9, minute)).toISOString();

let eventCounter = 0;
const modelEvent = (
  user: IamUser,
  minute: number,
  rest:
    | { type: 'membership.added' | 'membership.removed'; team: string }
    | { type: 'user.offboarded' }
    | { type: 'user.teams'; teams: string[] },
): ModelEvent =>
  ({ id: `lease-e-${++eventCounter}`, userId: user.id, occurredAt: at(minute), ...rest }) as ModelEvent;

/** Fails the test instead of hanging when a promise does not settle in time. */
const bounded = <T>(promise: Promise<T>, ms: number, what: string): Promise<T> =>
  Promise.race([
    promise,
    sleep(ms, undefined, { ref: false }).then(() => {
      throw new Error(`${what} did not happen within ${ms} ms`);
    }),
  ]);

/** A lease that says when its instance has recorded its batch (its first attempt). */
const signallingLease = (lease: LeasePort) => {
  let signal: () => void = () => undefined;
  const firstAttempt = new Promise<void>((resolve) => {
    signal = resolve;
  });
  let acquiredAt: number | undefined;
  const port: LeasePort = {
    ...lease,
    async tryAcquire(name, owner, expiresAt, options) {
      signal();
      const got = await lease.tryAcquire(name, owner, expiresAt, options);
      if (got && acquiredAt === undefined) acquiredAt = Date.now();
      return got;
    },
  };
  return { port, firstAttempt, acquiredAt: () => acquiredAt };
};

describe('two access-changes instances under the converge lease', () => {
  it('converge one after another: the second writes nothing for the users the first settled', async () => {
    // Prepare: the same users in both batches; batch B's facts are newer for some of them.
    const users = [extraUser(1), extraUser(2), extraUser(3), extraUser(4)];
    clearUsers(users);
    const [ana, ben, cem, dan] = users as [IamUser, IamUser, IamUser, IamUser];
    const eventsA = [
      modelEvent(ana, 1, { type: 'membership.added', team: 'platform' }),
      modelEvent(ben, 1, { type: 'membership.added', team: 'backend' }),
      modelEvent(cem, 1, { type: 'membership.added', team: 'data' }),
      modelEvent(dan, 1, { type: 'user.teams', teams: ['frontend', 'security'] }),
    ];
    const eventsB = [
      modelEvent(ana, 2, { type: 'membership.added', team: 'sre' }),
      modelEvent(ben, 2, { type: 'membership.removed', team: 'backend' }),
      modelEvent(ben, 3, { type: 'membership.added', team: 'frontend' }),
      modelEvent(cem, 2, { type: 'user.offboarded' }),
      modelEvent(dan, 0, { type: 'membership.added', team: 'platform' }),
    ];
    const store = createMemoryStore();
    const shared = createMemoryLease();
    // A holder that lets go only once both batches are recorded: whoever goes first sees both.
    await shared.tryAcquire(convergeLeaseName, 'gate', Date.now() + 60_000);
    const leaseA = signallingLease(shared);
    const leaseB = signallingLease(shared);
    const a = instanceFactory('sync-a', store, leaseA.port);
    const b = instanceFactory('sync-b', store, leaseB.port);
    sim.resetCounts();

    // Act
    const runs = Promise.all([
      runUntilApplied(
        a,
        eventsA.map((event) => recordOf(event, users.find((u) => u.id === event.userId) as IamUser)),
      ),
      runUntilApplied(
        b,
        eventsB.map((event) => recordOf(event, users.find((u) => u.id === event.userId) as IamUser)),
      ),
    ]);
    await bounded(Promise.all([leaseA.firstAttempt, leaseB.firstAttempt]), 20_000, 'both batches recorded');
    await shared.release(convergeLeaseName, 'gate');
    const deliveries = await runs;

    // Assess
    expect(deliveries).toEqual([1, 1]);
    const expected = expectedByUser([...eventsA, ...eventsB], users);
    expect(heldByUser(users)).toEqual(expected);
    const [first, second] = (leaseA.acquiredAt() ?? 0) <= (leaseB.acquiredAt() ?? 0) ? [a, b] : [b, a];
    // From nothing, the floor: one grant per target anyone ends up on, every user in it. The first
    // holder converged to both batches' facts at once (nothing granted and revoked again).
    const floor = [...new Set(Object.values(expected).flatMap((held) => Object.keys(held)))]
      .map((key) => `POST ${key}`)
      .sort();
    expect([...first.writes].sort()).toEqual(floor);
    expect(second.writes).toEqual([]);
    // Nothing behind the ports: no conflict re-reads and rewrites of the client's own.
    expect(writesIn(sim.requestLog()).sort()).toEqual([...first.writes].sort());
    expect(first.telemetry.timings.get(MetricNames.convergeLeaseWait)?.[0]).toBeGreaterThan(0);
  }, 60_000);

  it('converge the users the other batch announced: the second holder finds its own users settled', async () => {
    // Prepare: no user in both batches.
    const users = [extraUser(7), extraUser(8), extraUser(9)];
    clearUsers(users);
    const [eva, fay, gus] = users as [IamUser, IamUser, IamUser];
    const eventsA = [modelEvent(eva, 1, { type: 'membership.added', team: 'backend' })];
    const eventsB = [
      modelEvent(fay, 1, { type: 'membership.added', team: 'backend' }),
      modelEvent(gus, 1, { type: 'user.teams', teams: ['backend', 'data'] }),
    ];
    const store = createMemoryStore();
    const shared = createMemoryLease();
    await shared.tryAcquire(convergeLeaseName, 'gate', Date.now() + 60_000);
    const leaseA = signallingLease(shared);
    const leaseB = signallingLease(shared);
    const a = instanceFactory('sync-c', store, leaseA.port);
    const b = instanceFactory('sync-d', store, leaseB.port);
    const userOf = (event: ModelEvent) => users.find((u) => u.id === event.userId) as IamUser;

    // Act
    const runs = Promise.all([
      runUntilApplied(
        a,
        eventsA.map((event) => recordOf(event, userOf(event))),
      ),
      runUntilApplied(
        b,
        eventsB.map((event) => recordOf(event, userOf(event))),
      ),
    ]);
    await bounded(Promise.all([leaseA.firstAttempt, leaseB.firstAttempt]), 20_000, 'both batches recorded');
    await shared.release(convergeLeaseName, 'gate');
    const deliveries = await runs;

    // Assess
    expect(deliveries).toEqual([1, 1]);
    const expected = expectedByUser([...eventsA, ...eventsB], users);
    expect(heldByUser(users)).toEqual(expected);
    const [first, second] = (leaseA.acquiredAt() ?? 0) <= (leaseB.acquiredAt() ?? 0) ? [a, b] : [b, a];
    const floor = [...new Set(Object.values(expected).flatMap((held) => Object.keys(held)))]
      .map((key) => `POST ${key}`)
      .sort();
    expect([...first.writes].sort()).toEqual(floor);
    expect(second.writes).toEqual([]);
    expect(await shared.announced(convergeLeaseName)).toEqual([]);
  }, 60_000);

  it('waits for a holder that crashed only until its lease expires', async () => {
    // Prepare: a holder that will never release, its lease expiring shortly.
    const user = extraUser(5);
    clearUsers([user]);
    const store = createMemoryStore();
    const lease = createMemoryLease();
    const expiresAt = Date.now() + 800;
    await lease.tryAcquire(convergeLeaseName, 'crashed', expiresAt);
    const writesAt: number[] = [];
    const instance = instanceFactory('sync-after-crash', store, lease, async () => {
      writesAt.push(Date.now());
    });
    const events = [modelEvent(user, 1, { type: 'membership.added', team: 'sre' })];

    // Act
    const report = await instance.run(events.map((event) => recordOf(event, user)));

    // Assess
    expect(report.retried).toEqual([]);
    expect(report.applied).toHaveLength(1);
    expect(heldByUser([user])).toEqual(expectedByUser(events, [user]));
    // Its facts were recorded at once; no SWR call before the crashed holder's lease expired.
    expect(writesAt.length).toBeGreaterThan(0);
    expect(Math.min(...writesAt)).toBeGreaterThanOrEqual(expiresAt);
  }, 30_000);

  it('retries the batch with a clear reason when the lease stays taken until its deadline', async () => {
    // Prepare
    const user = extraUser(6);
    clearUsers([user]);
    const store = createMemoryStore();
    const lease = createMemoryLease();
    await lease.tryAcquire(convergeLeaseName, 'slow-holder', Date.now() + 60_000);
    const instance = instanceFactory('sync-starved', store, lease);
    const events = [modelEvent(user, 1, { type: 'membership.added', team: 'platform' })];

    // Act
    const report = await instance.run(
      events.map((event) => recordOf(event, user)),
      Date.now() + 1_800,
    );
    const recorded = await store.get(user.id);

    // Assess
    expect(report.applied).toEqual([]);
    expect(report.retried).toHaveLength(1);
    expect(report.retried[0]?.error).toMatchObject({ code: ErrorCodes.leaseBusy, retryable: true });
    expect(instance.writes).toEqual([]);
    expect(heldByUser([user])).toEqual({ [user.name]: {} });
    expect(recorded?.teams.platform?.member).toBe(true);
    expect(instance.telemetry.lines).toContainEqual(
      expect.objectContaining({ level: 'WARN', errorCode: ErrorCodes.leaseBusy }),
    );
  }, 30_000);
});

describe('interleavings of two batches for the same users (property)', () => {
  const users = [extraUser(10), extraUser(11), extraUser(12)];
  const instants = [0, 1, 2, 2, 3];

  const eventArbitrary = fc.record({
    who: fc.integer({ min: 0, max: users.length - 1 }),
    minute: fc.constantFrom(...instants),
    kind: fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          type: fc.constant('membership.added' as const),
          team: fc.constantFrom(...teams),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          type: fc.constant('membership.removed' as const),
          team: fc.constantFrom(...teams),
        }),
      },
      { weight: 1, arbitrary: fc.record({ type: fc.constant('user.offboarded' as const) }) },
      {
        weight: 1,
        arbitrary: fc.record({ type: fc.constant('user.teams' as const), teams: fc.subarray([...teams]) }),
      },
    ),
  });

  it('ends as the reference model and the store say, with no grant for a tombstoned user', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(eventArbitrary, { minLength: 2, maxLength: 14 }),
        fc.array(fc.boolean(), { minLength: 14, maxLength: 14 }),
        fc.array(fc.integer({ min: 0, max: 15 }), { minLength: 8, maxLength: 8 }),
        async (drafts, inB, delays) => {
          // Prepare
          clearUsers(users);
          const events = drafts.map(({ who, minute, kind }) =>
            modelEvent(users[who] as IamUser, minute, kind),
          );
          const store = createMemoryStore();
          const lease = createMemoryLease();
          // Seeded pauses before store and SWR calls shift where the two instances interleave.
          let turn = 0;
          const pause = async () => {
            const ms = delays[turn++ % delays.length] ?? 0;
            if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
          };
          const pausedStore: MembershipStorePort = {
            get: async (...args) => {
              await pause();
              return store.get(...args);
            },
            apply: async (...args) => {
              await pause();
              return store.apply(...args);
            },
            applyDue: (...args) => store.applyDue(...args),
            list: (...args) => store.list(...args),
          };
          const a = instanceFactory('prop-a', pausedStore, lease, pause);
          const b = instanceFactory('prop-b', pausedStore, lease, pause);
          const userOf = (event: ModelEvent) => users.find((u) => u.id === event.userId) as IamUser;
          const batchA = events.filter((_, i) => !inB[i]).map((event) => recordOf(event, userOf(event)));
          const batchB = events.filter((_, i) => inB[i]).map((event) => recordOf(event, userOf(event)));

          // Act
          await Promise.all([
            batchA.length === 0 ? 0 : runUntilApplied(a, batchA),
            batchB.length === 0 ? 0 : runUntilApplied(b, batchB),
          ]);

          // Assess
          const held = heldByUser(users);
          expect(held).toEqual(expectedByUser(events, users));
          for (const user of users) {
            const record = await store.get(user.id);
            expect(held[user.name]).toEqual(givenByRecord(record));
            const rehired = Object.values(record?.teams ?? {}).some(
              (fact) => fact.member && Date.parse(fact.at) > Date.parse(record?.offboardedAt ?? ''),
            );
            if (record?.offboardedAt !== undefined && !rehired) expect(held[user.name]).toEqual({});
          }
        },
      ),
      { seed: 20261130, numRuns: 12, endOnFailure: true },
    );
  }, 180_000);
});

describe('the real handlers with the lease in DynamoDB', () => {
  const tableName = 'converge-lease';
  let dynamo: LocalDynamo;

  beforeAll(async () => {
    dynamo = await startLocalDynamo();
    await ensureTable(dynamo.client, tableName);
  });

  afterAll(async () => {
    await dynamo?.stop();
  });

  const eventOf = (bodies: readonly object[], fifo: boolean, groupId: string): SQSEvent =>
    sqsEventOf(
      bodies.map((body) =>
        sqsRecordFactory({
          body: JSON.stringify(body),
          queueArn: `arn:aws:sqs:eu-west-1:000000000000:${fifo ? 'offboarding.fifo' : 'access-changes'}`,
          ...(fifo ? { groupId, dedupId: (body as { id: string }).id } : {}),
        }),
      ),
    );

  it('offboards while an access-changes instance holds the lease; the sync function gives up at its deadline', async () => {
    // Prepare: an access-changes instance holds the lease for a minute.
    const user = extraUser(20);
    clearUsers([user]);
    sim.setPermission({ kind: 'repo', namespace: 'core', repository: 'api/server' }, user.id, 7);
    const telemetry = { sync: createMemoryTelemetry(), offboard: createMemoryTelemetry() };
    const env = {
      ...simulatorEnv(sim),
      TABLE_NAME: tableName,
      // No message here is dead-lettered: the queues are never called.
      ACCESS_CHANGES_DLQ_URL: 'http://127.0.0.1:9/000000000000/access-changes-dlq',
      OFFBOARDING_DLQ_URL: 'http://127.0.0.1:9/000000000000/offboarding-dlq.fifo',
      POLICY_FILE: policyFile,
      SAFETY_MARGIN_MS: '2000',
    };
    const handlerOf = (functionName: 'sync' | 'offboard') =>
      createSqsHandler(
        createQueueRuntime({
          functionName,
          queue: functionName === 'sync' ? 'accessChanges' : 'offboarding',
          env,
          log: telemetry[functionName].log,
          metrics: telemetry[functionName].metrics,
          clients: { dynamo: dynamo.client },
        }),
      );
    const holder = createDynamoLease({ client: dynamo.client, tableName });
    await holder.tryAcquire(convergeLeaseName, 'other-sync-instance', Date.now() + 60_000);
    const base = {
      user: { id: user.id, name: user.name },
      occurredAt: new Date(Date.now() - 60_000).toISOString(),
    };

    // Act
    const offboarded = (await handlerOf('offboard')(
      eventOf([{ ...base, id: 'lease-offboard-1', type: 'user.offboarded' }], true, user.id),
      createLambdaContext('swr-access-sync-test-offboard', 60_000),
    )) as SQSBatchResponse;
    const synced = (await handlerOf('sync')(
      eventOf([{ ...base, id: 'lease-join-1', type: 'membership.added', team: 'platform' }], false, user.id),
      // 4 s left, 2 s kept as the safety margin: 2 s to wait, less the time a converge needs.
      createLambdaContext('swr-access-sync-test-sync', 4_000),
    )) as SQSBatchResponse;

    // Assess
    expect(offboarded.batchItemFailures).toEqual([]);
    expect(grantsOf(sim.permissions(), user.id)).toEqual({});
    expect(telemetry.offboard.timings.get(MetricNames.convergeLeaseWait)).toBeUndefined();
    expect(synced.batchItemFailures).toHaveLength(1);
    expect(telemetry.sync.timings.get(MetricNames.convergeLeaseWait)).toHaveLength(1);
    expect(telemetry.sync.lines).toContainEqual(
      expect.objectContaining({ message: 'message will be retried', errorCode: ErrorCodes.leaseBusy }),
    );
  }, 60_000);
});

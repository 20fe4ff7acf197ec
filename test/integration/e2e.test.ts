/**
 * End to end on the local stack: producer → fauxqs FIFO queues → pollers → the real handler
 * wiring (`createSqsHandler(createQueueRuntime(…))`) → the undici client → the SWR/IAM simulator,
 * with the membership store in dynalite. Every case asserts the final permissions and the DLQs.
 */
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AuthLevel } from '../../lib/domain.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import { createDynamoStore } from '../../lib/store/index.ts';
import {
  demoUsers,
  extraUser,
  grantsOf,
  peopleEventFactory,
  seedWithExtraUsers,
  serviceAccountId,
  writesIn,
} from '../support/stack.ts';

const drainMs = 45_000;

/** `{ 'core/api/server': 'write' }` → levels, for readable expectations. */
const levels = (spec: Record<string, 'read' | 'write' | 'manage'>): Record<string, AuthLevel> =>
  Object.fromEntries(
    Object.entries(spec).map(([key, permission]) => [
      key,
      permission === 'read' ? 1 : permission === 'write' ? 3 : 7,
    ]),
  );

/** A snapshot without one user: what must not move when only that user's events ran. */
const withoutUser = (snapshot: ReturnType<LocalStack['sim']['permissions']>, userId: string) => {
  const strip = (targets: Record<string, Record<string, AuthLevel>>) =>
    Object.fromEntries(
      Object.entries(targets).map(([key, users]) => [
        key,
        Object.fromEntries(Object.entries(users).filter(([id]) => id !== userId)),
      ]),
    );
  return { repos: strip(snapshot.repos), namespaces: strip(snapshot.namespaces) };
};

describe('local stack end to end', () => {
  let stack: LocalStack;
  const telemetry = createMemoryTelemetry();
  const events = peopleEventFactory();
  const counter = (name: string) => telemetry.counters.get(name) ?? 0;

  beforeAll(async () => {
    stack = await startLocalStack({
      seed: seedWithExtraUsers(4),
      log: telemetry.log,
      metrics: telemetry.metrics,
      retryVisibilitySeconds: 1,
    });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  beforeEach(async () => {
    stack.sim.setFaults({ error5xxRate: 0, throttle429Rate: 0, failTargets: [] });
    await stack.deadLetters({ remove: true });
    stack.sim.resetCounts();
  });

  /** Sends, waits for both queues to drain, and returns (removing) what reached the DLQs. */
  const run = async (batch: readonly unknown[]) => {
    await stack.send(batch);
    await stack.drain({ timeoutMs: drainMs });
    return stack.deadLetters({ remove: true });
  };

  it('grants the team of a join', async () => {
    // Prepare
    const frank = demoUsers.frank;

    // Act
    const letters = await run([events.join(frank, 'frontend')]);

    // Assess
    expect(grantsOf(stack.sim.permissions(), frank.id)).toEqual(
      levels({ 'core/web/frontend': 'write', 'core/base/node': 'read', 'tools/lint': 'read' }),
    );
    expect(letters).toEqual([]);
  });

  it('downgrades with a change, not a revoke, when another team still gives the repository', async () => {
    // Prepare
    const bob = demoUsers.bob;
    expect(await run([events.join(bob, 'backend'), events.join(bob, 'security')])).toEqual([]);
    stack.sim.resetCounts();

    // Act
    const letters = await run([events.leave(bob, 'backend')]);

    // Assess
    expect(grantsOf(stack.sim.permissions(), bob.id)).toEqual(
      levels({ 'core/api/server': 'read', 'core/web/frontend': 'read', 'data/warehouse/loader': 'read' }),
    );
    const writes = writesIn(stack.sim.requestLog());
    expect(writes).toContain('PATCH core/api/server');
    expect(writes).not.toContain('DELETE core/api/server');
    expect(writes).toEqual(
      expect.arrayContaining(['DELETE core/api/worker', 'DELETE core/base/node', 'DELETE data/etl/jobs']),
    );
    expect(letters).toEqual([]);
  });

  it('revokes everything a team gave when the user leaves their last team', async () => {
    // Prepare
    const carol = demoUsers.carol;
    expect(await run([events.join(carol, 'frontend')])).toEqual([]);
    expect(grantsOf(stack.sim.permissions(), carol.id)).toEqual(
      levels({ 'core/web/frontend': 'write', 'core/base/node': 'read', 'tools/lint': 'read' }),
    );

    // Act
    const letters = await run([events.leave(carol, 'frontend')]);

    // Assess
    expect(grantsOf(stack.sim.permissions(), carol.id)).toEqual({});
    expect(letters).toEqual([]);
  });

  it('revokes every policy target on offboarding and leaves the robot and the service account alone', async () => {
    // Prepare
    const { grace, robot } = demoUsers;
    expect(await run([events.join(grace, 'platform'), events.join(grace, 'sre')])).toEqual([]);
    expect(grantsOf(stack.sim.permissions(), grace.id)).toEqual(
      levels({
        'core/api/server': 'manage',
        'core/api/worker': 'manage',
        'core/base/node': 'manage',
        'tools/ci/runner': 'write',
        tools: 'write',
        'data/etl/jobs': 'read',
      }),
    );
    const before = stack.sim.permissions();

    // Act
    const letters = await run([events.offboard(grace), events.offboard(robot)]);

    // Assess
    const after = stack.sim.permissions();
    expect(grantsOf(after, grace.id)).toEqual({});
    expect(grantsOf(after, robot.id)).toEqual(levels({ core: 'read', tools: 'write' }));
    expect(grantsOf(after, serviceAccountId)).toEqual(grantsOf(before, serviceAccountId));
    expect(withoutUser(after, grace.id)).toEqual(withoutUser(before, grace.id));
    expect(letters).toEqual([]);
  });

  it.each([
    { label: 'bad JSON', body: '{"id": "e-1", "type": ', errorCode: 'INVALID_JSON', group: 'unparseable' },
    {
      label: 'schema error',
      body: JSON.stringify({
        id: 'schema-1',
        type: 'membership.added',
        occurredAt: '2026-01-01T00:00:00Z',
        user: { id: demoUsers.alice.id },
      }),
      errorCode: 'SCHEMA',
      group: demoUsers.alice.id,
    },
  ])(
    'dead-letters a message with $label at once, with the reason, and writes nothing',
    async ({ body, errorCode, group }) => {
      // Prepare
      const before = stack.sim.permissions();
      const startedAt = Date.now();

      // Act
      const sent = await stack.sqs.client.send(
        new SendMessageCommand({
          QueueUrl: stack.sqs.queues.accessChanges.url,
          MessageBody: body,
          MessageGroupId: group,
          MessageDeduplicationId: `bad-${errorCode}-${startedAt}`,
        }),
      );
      await stack.drain({ timeoutMs: drainMs });
      const letters = await stack.deadLetters({ remove: true });

      // Assess
      expect(letters).toHaveLength(1);
      const letter = letters[0];
      expect(letter?.queue).toBe('accessChanges');
      expect(letter?.body).toBe(body);
      expect(letter?.attributes).toMatchObject({
        errorCode,
        attempts: '1',
        sourceMessageId: sent.MessageId,
      });
      expect(letter?.attributes.errorMessage?.length).toBeGreaterThan(0);
      expect(letter?.attributes.failedTarget).toBeUndefined();
      const failedAt = Date.parse(letter?.attributes.failedAt ?? '');
      expect(failedAt).toBeGreaterThanOrEqual(startedAt - 1000);
      expect(failedAt).toBeLessThanOrEqual(Date.now());
      expect(writesIn(stack.sim.requestLog())).toEqual([]);
      expect(stack.sim.permissions()).toEqual(before);
    },
  );

  it('dead-letters a permanent SWR failure with the failing target and applies the rest', async () => {
    // Prepare
    const dave = demoUsers.dave;
    stack.sim.setFaults({
      failTargets: [{ target: 'core/api/server', status: 404, code: 'SVCSTG.SWR.4040010' }],
    });

    // Act
    const letters = await run([events.join(dave, 'backend')]);

    // Assess
    expect(grantsOf(stack.sim.permissions(), dave.id)).toEqual(
      levels({ 'core/api/worker': 'read', 'core/base/node': 'read', 'data/etl/jobs': 'read' }),
    );
    expect(letters).toHaveLength(1);
    expect(letters[0]?.attributes).toMatchObject({
      errorCode: 'SVCSTG.SWR.4040010',
      failedTarget: 'core/api/server',
      attempts: '1',
    });
    expect(JSON.parse(letters[0]?.body ?? '{}')).toMatchObject({ user: { id: dave.id }, team: 'backend' });
  });

  it('applies everything through transient 5xx and 429 faults, after retries', async () => {
    // Prepare
    const [first, second] = [extraUser(1), extraUser(2)];
    stack.sim.setFaults({
      error5xxRate: 0.3,
      throttle429Rate: 0.2,
      retryAfterSeconds: 'never',
      seed: 20261120,
    });
    const retriesBefore = counter(MetricNames.apiRetries);

    // Act
    const letters = await run([events.join(first, 'platform'), events.join(second, 'data')]);

    // Assess
    const snapshot = stack.sim.permissions();
    expect(grantsOf(snapshot, first.id)).toEqual(
      levels({
        'core/api/server': 'write',
        'core/api/worker': 'write',
        'core/base/node': 'manage',
        tools: 'read',
        'tools/ci/runner': 'write',
      }),
    );
    expect(grantsOf(snapshot, second.id)).toEqual(
      levels({ 'data/etl/jobs': 'write', 'data/warehouse/loader': 'write', 'core/base/node': 'read' }),
    );
    expect(letters).toEqual([]);
    const statuses = new Set(stack.sim.requestLog().map((entry) => entry.status));
    expect(statuses).toContain(500);
    expect(statuses).toContain(429);
    expect(counter(MetricNames.apiRetries)).toBeGreaterThan(retriesBefore);
  });

  it('resolves a user given only by name through IAM', async () => {
    // Prepare
    const erin = demoUsers.erin;

    // Act
    const letters = await run([events.join({ name: erin.name }, 'security')]);

    // Assess
    expect(grantsOf(stack.sim.permissions(), erin.id)).toEqual(
      levels({
        'core/api/server': 'read',
        'core/web/frontend': 'read',
        'data/warehouse/loader': 'read',
        // From the seed; no team erin is known to be in gives etl/jobs, so it is not touched.
        'data/etl/jobs': 'write',
      }),
    );
    const record = await createDynamoStore({ client: stack.dynamo.client, tableName: stack.tableName }).get(
      erin.id,
    );
    expect(record).toMatchObject({
      userId: erin.id,
      userName: erin.name,
      teams: { security: { member: true } },
    });
    expect(letters).toEqual([]);
  });

  it('records a team the policy does not know, applies the message and changes nothing', async () => {
    // Prepare
    const heidi = demoUsers.heidi;
    const before = stack.sim.permissions();
    const unknownBefore = counter(MetricNames.unknownTeams);

    // Act
    const letters = await run([events.join(heidi, 'marketing')]);

    // Assess
    expect(stack.sim.permissions()).toEqual(before);
    expect(writesIn(stack.sim.requestLog())).toEqual([]);
    const record = await createDynamoStore({ client: stack.dynamo.client, tableName: stack.tableName }).get(
      heidi.id,
    );
    expect(record?.teams.marketing?.member).toBe(true);
    expect(counter(MetricNames.unknownTeams)).toBe(unknownBefore + 1);
    expect(letters).toEqual([]);
  });

  it('applies a resent event once (the store knows the fact) and makes no call for the same fact under another id', async () => {
    // Prepare: access-changes is a standard queue, so both copies arrive; the second is the same
    // fact, a duplicate in the store.
    const user = extraUser(3);
    const join = events.join(user, 'frontend');
    const messagesBefore = counter(MetricNames.messagesIn);

    // Act
    const firstLetters = await run([join, join]);
    const afterDedup = counter(MetricNames.messagesIn);
    const grantsAfterFirst = grantsOf(stack.sim.permissions(), user.id);
    const grantCalls = writesIn(stack.sim.requestLog()).length;
    stack.sim.resetCounts();
    const secondLetters = await run([{ ...join, id: `${join.id}-again` }]);

    // Assess
    expect(afterDedup - messagesBefore).toBe(2);
    expect(grantCalls).toBe(3);
    expect(grantsAfterFirst).toEqual(
      levels({ 'core/web/frontend': 'write', 'core/base/node': 'read', 'tools/lint': 'read' }),
    );
    expect(counter(MetricNames.messagesIn) - afterDedup).toBe(1);
    expect(writesIn(stack.sim.requestLog())).toEqual([]);
    expect(grantsOf(stack.sim.permissions(), user.id)).toEqual(grantsAfterFirst);
    expect([...firstLetters, ...secondLetters]).toEqual([]);
  });
});

describe('local stack end to end: retryable failures that never heal', () => {
  let stack: LocalStack;
  const events = peopleEventFactory();

  beforeAll(async () => {
    stack = await startLocalStack({
      seed: seedWithExtraUsers(1),
      env: { RETRY_MAX_ATTEMPTS: '1' },
      retryVisibilitySeconds: 0,
    });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('dead-letters the message with its reason on its last receive (maxReceiveCount)', async () => {
    // Prepare
    const user = extraUser(1);
    stack.sim.setFaults({
      failTargets: [{ target: 'core/web/frontend', status: 500, code: 'SVCSTG.SWR.5000090' }],
    });
    const join = events.join(user, 'frontend');

    // Act
    const sent = await stack.sqs.client.send(
      new SendMessageCommand({
        QueueUrl: stack.sqs.queues.accessChanges.url,
        MessageBody: JSON.stringify(join),
        MessageGroupId: user.id,
        MessageDeduplicationId: join.id,
      }),
    );
    await stack.drain({ timeoutMs: drainMs });
    const letters = await stack.deadLetters({ remove: true });

    // Assess
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ queue: 'accessChanges', body: JSON.stringify(join) });
    // On its last receive the handler sends it to the DLQ itself, so the reason travels with it
    // (SQS's own redrive would move it without one).
    expect(letters[0]?.attributes).toMatchObject({
      errorCode: 'SVCSTG.SWR.5000090',
      failedTarget: 'core/web/frontend',
      attempts: String(stack.sqs.queues.accessChanges.maxReceiveCount),
      sourceMessageId: sent.MessageId,
    });
    const frontendReads = stack.sim
      .requestLog()
      .filter((entry) => entry.method === 'GET' && decodeURIComponent(entry.path).includes('web$frontend'));
    expect(frontendReads).toHaveLength(stack.sqs.queues.accessChanges.maxReceiveCount);
    expect(grantsOf(stack.sim.permissions(), user.id)).toEqual(
      levels({ 'core/base/node': 'read', 'tools/lint': 'read' }),
    );
  });
});

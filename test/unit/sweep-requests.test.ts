/**
 * The decoupled offboarding sweep, at the pipeline's interfaces (`processRecords` for the
 * offboarding queue, `processSweepRequests` for the sweep queue) with an in-memory store and SWR:
 * the known grants are revoked and the message settled while the sweep is still pending; the
 * sweep message then revokes what no team names; a request that could not be sent fails its
 * offboarding (retryable); several leavers share one pass; a rehire before the sweep keeps the
 * new grants. The SQS adapter and the request format are checked against the SDK's answers.
 */
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import queuesConfig from '../../config/queues.json' with { type: 'json' };
import type { Policy, Target, TargetAccess, UserDirectoryPort } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import { ErrorCodes, SyncError } from '../../lib/errors.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { createMemorySweepProgress } from '../../lib/offboarding/progress.ts';
import {
  parseSweepRequest,
  type SweepRequest,
  type SweepRequestPort,
  sweepRequestBody,
} from '../../lib/offboarding/requests.ts';
import { createSweepQueue } from '../../lib/offboarding/sweep-queue.ts';
import {
  type PipelineDeps,
  type PipelineRecord,
  processRecords,
  processSweepRequests,
} from '../../lib/pipeline.ts';
import { queueOfSource } from '../../lib/runtime.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { grant, userId } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';
import { memoryDlq } from '../support/memory-dlq.ts';

/** A FakeSwr that counts reads per target and can hold grants made by hand. */
class CountingSwr extends FakeSwr {
  readonly reads: string[] = [];

  override async getAccess(target: Target): Promise<TargetAccess> {
    this.reads.push(targetKey(target));
    return super.getAccess(target);
  }
}

const policy: Policy = {
  version: 1,
  sourcePath: 'test/policy.yaml',
  protectedUsers: [],
  managedNamespaces: ['core'],
  teams: {
    platform: [grant('core/api/server', 'write')],
    security: [grant('core/api/worker', 'read')],
  },
};

/** A repository of the managed namespace that no team names: only the sweep finds it. */
const handMade = 'core/legacy/tool';

const directory: UserDirectoryPort = {
  findById: async (id) => ({ id, name: `user${Number.parseInt(id, 16)}` }),
  findByName: async () => undefined,
};

/** A sweep queue in memory: what was requested, and users whose request "SQS" refuses. */
const memorySweepQueue = (refuse: ReadonlySet<string> = new Set()) => {
  const sent: SweepRequest[] = [];
  const port: SweepRequestPort = {
    async send(requests) {
      const failed: Array<{ userId: string; error: SyncError }> = [];
      for (const request of requests)
        if (refuse.has(request.userId))
          failed.push({
            userId: request.userId,
            error: new SyncError('InternalError: try again', { code: ErrorCodes.network, retryable: true }),
          });
        else sent.push(request);
      return { failed };
    },
  };
  return { port, sent };
};

let clock = Date.parse('2026-11-21T09:00:00Z');
const now = () => new Date(clock);

const eventRecord = (messageId: string, body: Record<string, unknown>, receiveCount = 1): PipelineRecord => ({
  messageId,
  groupId: String((body.user as { id: string }).id),
  receiveCount,
  body: JSON.stringify(body),
});

const joined = (n: number, team: string, at: string) =>
  eventRecord(`join-${n}-${team}-${at}`, {
    type: 'membership.added',
    id: `ev-join-${n}-${team}-${at}`,
    occurredAt: at,
    user: { id: userId(n), name: `user${n}` },
    team,
  });

const offboarded = (n: number, at = '2026-11-21T08:30:00Z') =>
  eventRecord(`off-${n}`, {
    type: 'user.offboarded',
    id: `ev-off-${n}`,
    occurredAt: at,
    user: { id: userId(n) },
  });

const requestRecords = (requests: readonly SweepRequest[], receiveCount = 1): PipelineRecord[] =>
  requests.map((request, index) => ({
    messageId: `sweep-${index}-${request.userId}`,
    groupId: undefined,
    receiveCount,
    body: sweepRequestBody(request),
  }));

const setup = () => {
  const swr = new CountingSwr();
  const store = createMemoryStore();
  const progress = createMemorySweepProgress();
  const telemetry = createMemoryTelemetry();
  const dlq = memoryDlq();
  const deps = (extra: Partial<PipelineDeps> = {}): PipelineDeps => ({
    swr,
    directory,
    store,
    policy,
    deadLetters: dlq,
    log: telemetry.log,
    metrics: telemetry.metrics,
    sweepProgress: progress,
    now,
    ...extra,
  });
  const settings = { actor: 'offboard', concurrency: 4, dryRun: false, maxReceiveCount: 5 };
  const run = (records: PipelineRecord[], extra: Partial<PipelineDeps> = {}) =>
    processRecords(records, deps(extra), settings, Date.now() + 30_000);
  const sweep = (records: PipelineRecord[], extra: Partial<PipelineDeps> = {}) =>
    processSweepRequests(records, deps(extra), settings, Date.now() + 30_000);
  return { swr, store, telemetry, dlq, run, sweep };
};

beforeEach(() => {
  clock = Date.parse('2026-11-21T09:00:00Z');
});

describe('offboarding with a sweep queue', () => {
  it('revokes the known grants and settles the message with the sweep still pending; the sweep message then revokes a hand-made grant', async () => {
    // Prepare
    const { swr, run, sweep, telemetry } = setup();
    await run([joined(1, 'platform', '2026-11-20T10:00:00Z')]);
    swr.hold(handMade, 1);
    const queue = memorySweepQueue();

    // Act: the offboarding queue's batch
    const offboarding = await run([offboarded(1)], { sweepRequests: queue.port });

    // Assess: acknowledged, known grant gone, hand-made grant still there, the sweep requested
    expect(offboarding.response.batchItemFailures).toEqual([]);
    expect(offboarding.applied).toEqual(['off-1']);
    expect(swr.holds('core/api/server', 1)).toBe(false);
    expect(swr.holds(handMade, 1)).toBe(true);
    expect(offboarding.proofs).toEqual([]);
    expect(queue.sent).toEqual([{ userId: userId(1), offboardedAt: '2026-11-21T08:30:00Z' }]);

    // Act: the sweep queue's batch
    const swept = await sweep(requestRecords(queue.sent));

    // Assess
    expect(swept.response.batchItemFailures).toEqual([]);
    expect(swr.holds(handMade, 1)).toBe(false);
    expect(swept.proofs.map((proof) => proof.userId)).toEqual([userId(1)]);
    expect(
      telemetry.lines.some((line) => line.message === 'offboarding proven' && line.userId === userId(1)),
    ).toBe(true);
    expect(swept.changes.map((change) => [targetKey(change.target), change.after])).toEqual([
      [handMade, undefined],
    ]);
  });

  it('fails exactly the offboardings whose sweep request was not sent, retryably; their known grants are revoked all the same', async () => {
    await fc.assert(
      fc.asyncProperty(fc.subarray([1, 2, 3, 4, 5], { minLength: 0 }), async (refused) => {
        // Prepare
        const { swr, run } = setup();
        const users = [1, 2, 3, 4, 5];
        await run(users.map((n) => joined(n, 'platform', '2026-11-20T10:00:00Z')));
        const queue = memorySweepQueue(new Set(refused.map(userId)));

        // Act
        const report = await run(
          users.map((n) => offboarded(n)),
          { sweepRequests: queue.port },
        );

        // Assess
        const failed = report.response.batchItemFailures.map((item) => item.itemIdentifier).sort();
        expect(failed).toEqual(refused.map((n) => `off-${n}`).sort());
        expect(report.retried.every((failure) => failure.error.retryable)).toBe(true);
        expect(report.deadLettered).toEqual([]);
        for (const n of users) expect(swr.holds('core/api/server', n)).toBe(false);
        expect(queue.sent.map((request) => request.userId).sort()).toEqual(
          users
            .filter((n) => !refused.includes(n))
            .map(userId)
            .sort(),
        );
      }),
      { seed: 20261130, numRuns: 25 },
    );
  });

  it('sweeps several leavers in one batch reading each target once', async () => {
    // Prepare
    const { swr, run, sweep } = setup();
    const users = [1, 2, 3, 4];
    await run(users.map((n) => joined(n, 'platform', '2026-11-20T10:00:00Z')));
    for (const n of users) swr.hold(`core/legacy/repo-${n}`, n);
    const queue = memorySweepQueue();
    await run(
      users.map((n) => offboarded(n)),
      { sweepRequests: queue.port },
    );
    swr.reads.length = 0;

    // Act: every request twice (a redelivered offboarding sends its request again)
    const report = await sweep(requestRecords([...queue.sent, ...queue.sent]));

    // Assess
    expect(report.response.batchItemFailures).toEqual([]);
    const perTarget = new Map<string, number>();
    for (const key of swr.reads) perTarget.set(key, (perTarget.get(key) ?? 0) + 1);
    const readTwice = [...perTarget].filter(
      ([key, count]) => count > 1 && !swr.calls.some((c) => c.target === key),
    );
    expect(readTwice).toEqual([]);
    expect([...perTarget.keys()].sort()).toEqual(
      ['core', 'core/api/server', 'core/api/worker', ...users.map((n) => `core/legacy/repo-${n}`)].sort(),
    );
    for (const n of users) expect(swr.holds(`core/legacy/repo-${n}`, n)).toBe(false);
    expect(report.proofs.map((proof) => proof.userId).sort()).toEqual(users.map(userId).sort());
  });

  it('converges a user rehired before the sweep ran from the newest record, and revokes none of the new grants', async () => {
    // Prepare
    const { swr, run, sweep, telemetry } = setup();
    await run([joined(1, 'platform', '2026-11-20T10:00:00Z')]);
    const queue = memorySweepQueue();
    await run([offboarded(1)], { sweepRequests: queue.port });
    await run([joined(1, 'security', '2026-11-21T08:45:00Z')], { sweepRequests: queue.port });
    swr.hold(handMade, 1);
    const granted = [...swr.state.entries()].filter(([, users]) => users.has(userId(1))).map(([key]) => key);
    swr.calls.length = 0;

    // Act
    const report = await sweep(requestRecords(queue.sent));

    // Assess: settled, no sweep (the hand-made grant outside the user's teams stays), no write
    // (the user's known targets were found right); the reason logged
    expect(granted).toEqual(expect.arrayContaining(['core/api/worker', handMade]));
    expect(report.response.batchItemFailures).toEqual([]);
    expect(swr.calls).toEqual([]);
    expect(swr.holds('core/api/worker', 1)).toBe(true);
    expect(swr.holds(handMade, 1)).toBe(true);
    const converged = telemetry.lines.find(
      (line) => line.message === 'offboarding sweep replaced by a converge: the user was rehired',
    );
    expect(converged?.userId).toBe(userId(1));
  });

  it('revokes, on a retried request, a grant a rehired user kept after leaving that team again', async () => {
    // Prepare: offboarded, rehired into platform and security, then out of security again; the
    // stale grant of an earlier sweep round that saw the rehire (and did not settle) is at SWR
    const { swr, run, sweep } = setup();
    await run([joined(1, 'platform', '2026-11-20T10:00:00Z')]);
    const queue = memorySweepQueue();
    await run([offboarded(1)], { sweepRequests: queue.port });
    await run(
      [joined(1, 'platform', '2026-11-21T08:45:00Z'), joined(1, 'security', '2026-11-21T08:46:00Z')],
      { sweepRequests: queue.port },
    );
    await run(
      [
        eventRecord('leave-1-security', {
          type: 'membership.removed',
          id: 'ev-leave-1-security',
          occurredAt: '2026-11-21T08:50:00Z',
          user: { id: userId(1), name: 'user1' },
          team: 'security',
        }),
      ],
      { sweepRequests: queue.port },
    );
    swr.hold('core/api/worker', 1, 1);

    // Act: the request delivered again
    const report = await sweep(requestRecords(queue.sent, 2));

    // Assess: settled, and the user holds what the newest record gives, nothing else
    expect(report.response.batchItemFailures).toEqual([]);
    expect(swr.holds('core/api/worker', 1)).toBe(false);
    expect(swr.holds('core/api/server', 1)).toBe(true);
  });

  it('converges a rehired user on every policy target in place of the sweep: a grant of a team from before the offboarding is revoked', async () => {
    // Prepare: in platform, offboarded (its marker compacted away), rehired into security; a
    // platform grant planned before the offboarding in a round that did not settle is at SWR
    const { swr, run, sweep } = setup();
    await run([joined(1, 'platform', '2026-11-20T10:00:00Z')]);
    const queue = memorySweepQueue();
    await run([offboarded(1)], { sweepRequests: queue.port });
    await run([joined(1, 'security', '2026-11-21T08:45:00Z')], { sweepRequests: queue.port });
    swr.hold('core/api/server', 1, 3);

    // Act
    const report = await sweep(requestRecords(queue.sent));

    // Assess
    expect(report.response.batchItemFailures).toEqual([]);
    expect(swr.holds('core/api/server', 1)).toBe(false);
    expect(swr.holds('core/api/worker', 1)).toBe(true);
  });

  it('checks every policy target for a message delivered again: a grant from before an offboarding, on a team the rehired user no longer has, is revoked', async () => {
    // Prepare: in platform, offboarded (the platform marker compacted away), rehired into
    // security; the platform grant of a round that did not settle is still at SWR
    const { swr, run } = setup();
    const platformJoin = joined(1, 'platform', '2026-11-20T10:00:00Z');
    await run([platformJoin]);
    await run([offboarded(1)]);
    await run([joined(1, 'security', '2026-11-21T08:45:00Z')]);
    swr.hold('core/api/server', 1, 3);

    // Act: the platform join delivered again (stale now: it changes no record)
    const report = await run([{ ...platformJoin, receiveCount: 2 }]);

    // Assess
    expect(report.response.batchItemFailures).toEqual([]);
    expect(swr.holds('core/api/server', 1)).toBe(false);
    expect(swr.holds('core/api/worker', 1)).toBe(true);
  });

  it('keeps an unfinished sweep unsettled, and dead-letters it with the reason on the last receive', async () => {
    // Prepare
    const { swr, run, sweep, dlq } = setup();
    await run([joined(1, 'platform', '2026-11-20T10:00:00Z')]);
    const queue = memorySweepQueue();
    await run([offboarded(1)], { sweepRequests: queue.port });
    swr
      .hold(handMade, 1)
      .failTarget(
        handMade,
        new SyncError('system busy', { code: 'SVCSTG.SWR.4090023', retryable: true, target: handMade }),
      );

    // Act
    const early = await sweep(requestRecords(queue.sent, 1));
    const last = await sweep(
      requestRecords(queue.sent, queuesConfig.queues.offboardingSweeps.maxReceiveCount),
    );

    // Assess
    expect(early.response.batchItemFailures).toHaveLength(1);
    expect(early.retried[0]?.error.retryable).toBe(true);
    expect(last.deadLettered).toHaveLength(1);
    expect(dlq.letters.map((letter) => letter.error.code)).toEqual(['SVCSTG.SWR.4090023']);
  });

  it.each([
    ['not JSON', '{oops', ErrorCodes.invalidJson],
    [
      'another kind',
      JSON.stringify({ kind: 'user.offboarded', userId: 'u', offboardedAt: 'x' }),
      ErrorCodes.schema,
    ],
    ['no tombstone', JSON.stringify({ kind: 'offboarding.sweep', userId: 'u' }), ErrorCodes.schema],
    [
      'an extra field',
      `${sweepRequestBody({ userId: 'u', offboardedAt: 'x' }).slice(0, -1)},"x":1}`,
      ErrorCodes.schema,
    ],
  ])('refuses a body that is %s for good', (_, body, code) => {
    // Act
    const parsed = parseSweepRequest(body);

    // Assess
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.error.code).toBe(code);
      expect(parsed.error.retryable).toBe(false);
    }
  });
});

describe('createSweepQueue', () => {
  const sqs = new SQSClient({ region: 'eu-west-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } });
  const mock = mockClient(sqs);
  const queue = createSweepQueue({
    sqs,
    queueUrl: 'https://sqs.eu-west-1.amazonaws.com/1/offboarding-sweeps',
  });
  const requests = (count: number) =>
    Array.from({ length: count }, (_, index) => ({
      userId: userId(index + 1),
      offboardedAt: '2026-11-21T08:30:00Z',
    }));

  beforeEach(() => {
    mock.reset();
  });

  it('sends one request per user in calls of at most 10, each body a sweep request', async () => {
    // Prepare
    mock.on(SendMessageBatchCommand).callsFake((input: { Entries: Array<{ Id: string }> }) => ({
      Successful: input.Entries.map((entry) => ({
        Id: entry.Id,
        MessageId: `m${entry.Id}`,
        MD5OfMessageBody: '',
      })),
      Failed: [],
    }));

    // Act
    const { failed } = await queue.send([...requests(12), ...requests(3)]);

    // Assess
    const calls = mock.commandCalls(SendMessageBatchCommand);
    expect(failed).toEqual([]);
    expect(calls.map((call) => call.args[0].input.Entries?.length)).toEqual([10, 2]);
    const bodies = calls
      .flatMap((call) => call.args[0].input.Entries ?? [])
      .map((entry) => entry.MessageBody ?? '');
    expect(bodies.map((body) => parseSweepRequest(body).ok)).toEqual(Array(12).fill(true));
    expect(calls[0]?.args[0].input.Entries?.[0]).not.toHaveProperty('MessageGroupId');
  });

  it.each([
    [
      'an entry in Failed[]',
      {
        Successful: [{ Id: '0', MessageId: 'm', MD5OfMessageBody: '' }],
        Failed: [{ Id: '1', SenderFault: false, Code: 'InternalError' }],
      },
      [userId(2)],
    ],
    [
      'an entry in neither list',
      { Successful: [{ Id: '1', MessageId: 'm', MD5OfMessageBody: '' }], Failed: [] },
      [userId(1)],
    ],
  ])('reports %s as not sent, retryable', async (_, answer, notSent) => {
    // Prepare
    mock.on(SendMessageBatchCommand).resolves(answer);

    // Act
    const { failed } = await queue.send(requests(2));

    // Assess
    expect(failed.map((entry) => entry.userId)).toEqual(notSent);
    expect(failed.every((entry) => entry.error.retryable)).toBe(true);
  });

  it('reports every request of a call that failed as not sent', async () => {
    // Prepare
    mock.on(SendMessageBatchCommand).rejects(new Error('socket hang up'));

    // Act
    const { failed } = await queue.send(requests(3));

    // Assess
    expect(failed.map((entry) => entry.userId)).toEqual(requests(3).map((request) => request.userId));
    expect(failed[0]?.error.message).toMatch(/socket hang up/);
  });
});

describe('queueOfSource', () => {
  const consumed = ['offboarding', 'offboardingSweeps'] as const;

  it.each([
    ['arn:aws:sqs:eu-west-1:123456789012:swr-access-sync-prod-offboarding-sweeps', 'offboardingSweeps'],
    ['arn:aws:sqs:eu-west-1:123456789012:swr-access-sync-prod-offboarding.fifo', 'offboarding'],
    ['arn:aws:sqs:us-east-1:000000000000:offboarding-sweeps', 'offboardingSweeps'],
    ['arn:aws:sqs:us-east-1:000000000000:offboarding.fifo', 'offboarding'],
    ['arn:aws:sqs:us-east-1:000000000000:something-else', 'offboarding'],
    [undefined, 'offboarding'],
  ])('routes a batch from %s to %s', (arn, queue) => {
    // Act / Assess
    expect(queueOfSource(arn, consumed, 'offboarding')).toBe(queue);
  });
});

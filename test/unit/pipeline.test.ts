import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { createDeadLetterSender } from '../../lib/dlq.ts';
import type { UserDirectoryPort } from '../../lib/domain.ts';
import { ErrorCodes, SyncError } from '../../lib/errors.ts';
import { createLambdaContext } from '../../lib/local/lambda-context.ts';
import { sqsEventOf, sqsRecordFactory } from '../../lib/local/lambda-events.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { type PipelineDeps, type PipelineRecord, processRecords } from '../../lib/pipeline.ts';
import { handleSqsEvent, type QueueRuntime } from '../../lib/sqs-handler.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { policyFactory, userId } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';
import { memoryDlq } from '../support/memory-dlq.ts';

const now = new Date('2026-11-23T10:00:00Z');
const policy = policyFactory({
  teams: { platform: { 'core/api/server': 'write' }, data: { 'data/etl': 'read' } },
});
const directory: UserDirectoryPort = {
  findById: async (id) => ({ id, name: `user-${id.slice(-2)}` }),
  findByName: async () => undefined,
};

const join = (n: number, team: string, id = `ev-${n}-${team}`) =>
  JSON.stringify({
    id,
    type: 'membership.added',
    occurredAt: '2026-11-23T09:00:00Z',
    user: { id: userId(n) },
    team,
  });

const record = (messageId: string, body: string, groupId: string, receiveCount = 1): PipelineRecord => ({
  messageId,
  body,
  groupId,
  receiveCount,
});

const depsFactory = (overrides: Partial<PipelineDeps> = {}): PipelineDeps & { swr: FakeSwr } => {
  const telemetry = createMemoryTelemetry();
  return {
    swr: new FakeSwr(),
    directory,
    store: createMemoryStore(),
    policy,
    deadLetters: memoryDlq(),
    log: telemetry.log,
    metrics: telemetry.metrics,
    now: () => now,
    ...overrides,
  } as PipelineDeps & { swr: FakeSwr };
};

const settings = { actor: 'sync', concurrency: 4, dryRun: false, maxReceiveCount: 5 };
// Real time: the stores bound their calls by the clock on the wall, whatever the test clock says.
const deadline = Date.now() + 60_000;
const listed = (response: { batchItemFailures: Array<{ itemIdentifier: string }> }) =>
  response.batchItemFailures.map((failure) => failure.itemIdentifier);

describe('processRecords', () => {
  it('retries a failing message and every later message of its group; other groups carry on', async () => {
    // Prepare: user 1's first join fails (busy target), user 2 is fine.
    const deps = depsFactory();
    deps.swr.failTarget(
      'core/api/server',
      new SyncError('busy', { code: 'SVCSTG.SWR.4090023', retryable: true }),
    );
    const records = [
      record('a1', join(1, 'platform'), userId(1)),
      record('b1', join(2, 'data'), userId(2)),
      record('a2', join(1, 'data'), userId(1)),
    ];

    // Act
    const report = await processRecords(records, deps, settings, deadline);

    // Assess
    expect(listed(report.response)).toEqual(['a1', 'a2']);
    expect(report.applied).toEqual(['b1']);
    expect(deps.swr.state.get('data/etl')?.has(userId(2))).toBe(true);
  });

  it('dead-letters a still-failing message on its last receive, with the reason', async () => {
    // Prepare
    const dlq = memoryDlq();
    const deps = depsFactory({ deadLetters: dlq });
    deps.swr.failTarget(
      'core/api/server',
      new SyncError('internal', { code: 'SVCSTG.SWR.5000090', retryable: true, target: 'core/api/server' }),
    );

    // Act
    const early = await processRecords(
      [record('m1', join(1, 'platform'), userId(1), 4)],
      deps,
      settings,
      deadline,
    );
    const last = await processRecords(
      [record('m1', join(1, 'platform'), userId(1), 5)],
      deps,
      settings,
      deadline,
    );

    // Assess
    expect(listed(early.response)).toEqual(['m1']);
    expect(listed(last.response)).toEqual([]);
    expect(dlq.letters.map((letter) => [letter.messageId, letter.error.code, letter.receiveCount])).toEqual([
      ['m1', 'SVCSTG.SWR.5000090', 5],
    ]);
  });

  it('lists a permanent failure for retry when the DLQ send fails (Failed[]): never lost', async () => {
    // Prepare: a real DLQ sender whose SendMessageBatch reports the entry in Failed[].
    const sqsMock = mockClient(SQSClient);
    sqsMock.on(SendMessageBatchCommand).resolves({
      Failed: [{ Id: '0', Code: 'InternalError', SenderFault: false }],
    });
    const deps = depsFactory({
      deadLetters: createDeadLetterSender({ sqs: new SQSClient({}), queueUrl: 'https://dlq' }),
    });

    // Act
    const report = await processRecords([record('bad', '{not json', 'g')], deps, settings, deadline);

    // Assess
    expect(listed(report.response)).toEqual(['bad']);
    expect(report.undeliverable.map((failure) => failure.error.code)).toEqual([ErrorCodes.invalidJson]);
    sqsMock.restore();
  });

  it('does not dead-letter a permanent failure held behind a retry of its group', async () => {
    // Prepare
    const dlq = memoryDlq();
    const deps = depsFactory({ deadLetters: dlq });
    deps.swr.failTarget(
      'core/api/server',
      new SyncError('busy', { code: 'SVCSTG.SWR.4090023', retryable: true }),
    );

    // Act
    const report = await processRecords(
      [record('a1', join(1, 'platform'), userId(1)), record('a2', '{"broken', userId(1))],
      deps,
      settings,
      deadline,
    );

    // Assess
    expect(listed(report.response)).toEqual(['a1', 'a2']);
    expect(dlq.letters).toEqual([]);
  });
});

describe('handleSqsEvent crash path', () => {
  const queueArn = 'arn:aws:sqs:eu-west-1:123456789012:access-changes.fifo';
  const event = sqsEventOf([
    sqsRecordFactory({
      body: join(1, 'platform'),
      messageId: 'm1',
      groupId: userId(1),
      dedupId: 'd1',
      queueArn,
    }),
    sqsRecordFactory({ body: join(2, 'data'), messageId: 'm2', groupId: userId(2), dedupId: 'd2', queueArn }),
  ]);
  let context: Context;

  beforeEach(() => {
    context = createLambdaContext('sync', 60_000);
  });

  it('lists every message, never none, when the runtime cannot start', async () => {
    // Prepare
    const telemetry = createMemoryTelemetry();
    const runtime: QueueRuntime = {
      ready: async () => {
        throw new TypeError('secret unreadable');
      },
      log: telemetry.log,
      metrics: telemetry.metrics,
    };

    // Act
    const response = await handleSqsEvent(event, context, runtime);

    // Assess
    expect(listed(response)).toEqual(['m1', 'm2']);
    expect(
      telemetry.lines.some((line) => line.level === 'ERROR' && line.errorCode === ErrorCodes.crash),
    ).toBe(true);
  });

  it('lists every message when the pipeline itself throws', async () => {
    // Prepare: a DLQ sender that throws (instead of reporting Failed[]) makes the final stage
    // throw, outside any per-message handling.
    const telemetry = createMemoryTelemetry();
    const deps = depsFactory({
      deadLetters: {
        send: () => {
          throw new Error('bug');
        },
      },
      store: createMemoryStore(),
    });
    const runtime: QueueRuntime = {
      ready: async () => ({ deps, settings, safetyMarginMs: 1000 }),
      log: telemetry.log,
      metrics: telemetry.metrics,
    };
    const bad = sqsEventOf([
      sqsRecordFactory({ body: '{bad', messageId: 'x1', groupId: 'g', dedupId: 'x', queueArn }),
      sqsRecordFactory({
        body: join(3, 'data'),
        messageId: 'x2',
        groupId: userId(3),
        dedupId: 'y',
        queueArn,
      }),
    ]);

    // Act
    const response = await handleSqsEvent(bad, context, runtime);

    // Assess
    expect(listed(response)).toEqual(['x1', 'x2']);
  });
});

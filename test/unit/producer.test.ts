import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import type { PeopleEvent } from '../../lib/domain.ts';
import {
  createEventProducer,
  EnqueueError,
  fifoFlags,
  InvalidEventError,
  type QueueTargets,
  validateEvents,
} from '../../lib/producer.ts';

expect.extend(allCustomMatcher);

const sqsMock = mockClient(SQSClient);
const accessUrl = 'https://sqs.eu-west-1.amazonaws.com/123456789012/access-changes.fifo';
const offboardUrl = 'https://sqs.eu-west-1.amazonaws.com/123456789012/offboarding.fifo';
const now = new Date('2026-11-20T12:00:00Z');
const alice = { id: 'a11ce000000000000000000000000001', name: 'alice' };

const queues = (fifo: { accessChanges: boolean; offboarding: boolean }): QueueTargets => ({
  accessChanges: { url: accessUrl, fifo: fifo.accessChanges },
  offboarding: { url: offboardUrl, fifo: fifo.offboarding },
});

let counter = 0;
const eventFactory = (overrides: Partial<PeopleEvent> = {}): PeopleEvent =>
  ({
    id: `ev-${++counter}`,
    type: 'membership.added',
    occurredAt: '2026-11-20T10:00:00Z',
    user: alice,
    team: 'platform',
    ...overrides,
  }) as PeopleEvent;

const noSleep = async () => undefined;

describe('event producer', () => {
  beforeEach(() => {
    sqsMock.reset();
    sqsMock.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
  });

  it('routes offboardings to their own queue, the rest to access-changes, with group and dedup ids', async () => {
    // Prepare
    const producer = createEventProducer({
      sqs: new SQSClient({}),
      queues: queues({ accessChanges: true, offboarding: true }),
    });
    const join = eventFactory({ id: 'join-1' });
    const leave = eventFactory({
      id: 'off-1',
      type: 'user.offboarded',
      team: undefined,
    } as Partial<PeopleEvent>);
    delete (leave as { team?: string }).team;

    // Act
    const result = await producer.send([{ event: join, dedupId: 'scim-derived-1' }, { event: leave }], {
      now,
    });

    // Assess
    expect(result).toEqual({ sent: 2, accessChanges: 1, offboarding: 1 });
    expect(sqsMock).toHaveReceivedCommandWith(SendMessageBatchCommand, {
      QueueUrl: accessUrl,
      Entries: [
        {
          Id: '0',
          MessageBody: JSON.stringify(join),
          MessageGroupId: alice.id,
          MessageDeduplicationId: 'scim-derived-1',
        },
      ],
    });
    expect(sqsMock).toHaveReceivedCommandWith(SendMessageBatchCommand, {
      QueueUrl: offboardUrl,
      Entries: [
        {
          Id: '1',
          MessageBody: JSON.stringify(leave),
          MessageGroupId: alice.id,
          MessageDeduplicationId: 'off-1',
        },
      ],
    });
  });

  it('sets neither group nor dedup id on a standard queue', async () => {
    // Prepare
    const producer = createEventProducer({
      sqs: new SQSClient({}),
      queues: queues({ accessChanges: false, offboarding: true }),
    });

    // Act
    await producer.send([{ event: eventFactory({ id: 'std-1' }) }], { now });

    // Assess
    const entry = sqsMock.commandCalls(SendMessageBatchCommand)[0]?.args[0].input.Entries?.[0];
    expect(entry).toBeDefined();
    expect(entry).not.toHaveProperty('MessageGroupId');
    expect(entry).not.toHaveProperty('MessageDeduplicationId');
  });

  it('groups by user name when an event of our own names only the user, hashing what SQS refuses', async () => {
    // Prepare
    const producer = createEventProducer({
      sqs: new SQSClient({}),
      queues: queues({ accessChanges: true, offboarding: true }),
    });

    // Act
    await producer.send([{ event: eventFactory({ id: 'ü-id', user: { name: 'Bob Smith' } }) }], { now });

    // Assess
    const entry = sqsMock.commandCalls(SendMessageBatchCommand)[0]?.args[0].input.Entries?.[0];
    expect(entry?.MessageGroupId).toMatch(/^[0-9a-f]{64}$/);
    expect(entry?.MessageDeduplicationId).toMatch(/^[0-9a-f]{64}$/);
  });

  it('keeps the order and sends at most 10 per call, one queue per call', async () => {
    // Prepare
    const producer = createEventProducer({
      sqs: new SQSClient({}),
      queues: queues({ accessChanges: true, offboarding: true }),
    });
    const events = Array.from({ length: 23 }, (_, index) => ({
      event: eventFactory({ id: `bulk-${index}` }),
    }));

    // Act
    const result = await producer.send(events, { now });

    // Assess
    const calls = sqsMock
      .commandCalls(SendMessageBatchCommand)
      .map((call) => call.args[0].input.Entries ?? []);
    expect(calls.map((entries) => entries.length)).toEqual([10, 10, 3]);
    expect(calls.flat().map((entry) => JSON.parse(entry.MessageBody ?? '{}').id)).toEqual(
      events.map((item) => item.event.id),
    );
    expect(result.sent).toBe(23);
  });

  it('refuses the whole list, sending nothing, when one event is not valid', async () => {
    // Prepare
    const producer = createEventProducer({
      sqs: new SQSClient({}),
      queues: queues({ accessChanges: true, offboarding: true }),
    });

    // Act
    const sending = producer.send(
      [
        { event: eventFactory() },
        { event: eventFactory({ team: '-bad' }) },
        { event: eventFactory({ occurredAt: '2030-01-01T00:00:00Z' }) },
      ],
      { now },
    );

    // Assess
    const error = await sending.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidEventError);
    expect((error as InvalidEventError).retryable).toBe(false);
    expect((error as InvalidEventError).problems.map((problem) => problem.index)).toEqual([1, 2]);
    expect(sqsMock).not.toHaveReceivedCommand(SendMessageBatchCommand);
  });

  it('retries entries SQS failed on its side, then reports what still failed (retryable)', async () => {
    // Prepare
    sqsMock
      .on(SendMessageBatchCommand)
      .resolvesOnce({ Failed: [{ Id: '1', Code: 'InternalError', SenderFault: false, Message: 'x' }] })
      .resolvesOnce({ Failed: [{ Id: '1', Code: 'InternalError', SenderFault: false, Message: 'x' }] })
      .resolvesOnce({ Failed: [{ Id: '1', Code: 'InternalError', SenderFault: false, Message: 'x' }] });
    const producer = createEventProducer({
      sqs: new SQSClient({}),
      queues: queues({ accessChanges: true, offboarding: true }),
      sleep: noSleep,
    });

    // Act
    const error = await producer
      .send([{ event: eventFactory() }, { event: eventFactory() }], { now })
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(EnqueueError);
    expect((error as EnqueueError).retryable).toBe(true);
    expect((error as EnqueueError).failed).toEqual([
      { index: 1, queue: 'accessChanges', code: 'InternalError' },
    ]);
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageBatchCommand, 3);
  });

  it('does not retry a sender fault, and says it is permanent', async () => {
    // Prepare
    sqsMock
      .on(SendMessageBatchCommand)
      .resolves({ Failed: [{ Id: '0', Code: 'InvalidParameterValue', SenderFault: true, Message: 'x' }] });
    const producer = createEventProducer({
      sqs: new SQSClient({}),
      queues: queues({ accessChanges: true, offboarding: true }),
      sleep: noSleep,
    });

    // Act
    const error = await producer.send([{ event: eventFactory() }], { now }).catch((e: unknown) => e);

    // Assess
    expect((error as EnqueueError).retryable).toBe(false);
    expect(sqsMock).toHaveReceivedCommandTimes(SendMessageBatchCommand, 1);
  });

  it('turns a failed call into a retryable error naming every entry of it', async () => {
    // Prepare
    sqsMock.on(SendMessageBatchCommand).rejects(new Error('socket hang up'));
    const producer = createEventProducer({
      sqs: new SQSClient({}),
      queues: queues({ accessChanges: true, offboarding: true }),
    });

    // Act
    const error = await producer
      .send([{ event: eventFactory() }, { event: eventFactory() }], { now })
      .catch((e: unknown) => e);

    // Assess
    expect(error).toBeInstanceOf(EnqueueError);
    expect((error as EnqueueError).retryable).toBe(true);
    expect((error as EnqueueError).failed.map((entry) => entry.index)).toEqual([0, 1]);
  });
});

describe('fifo flags and validation', () => {
  it.each([
    [
      { accessChanges: { fifo: false }, offboarding: {} },
      { accessChanges: false, offboarding: true },
    ],
    [
      { accessChanges: {}, offboarding: {} },
      { accessChanges: true, offboarding: true },
    ],
  ])('reads %j as %j (a missing flag means FIFO)', (configured, expected) => {
    // Act
    const flags = fifoFlags({ queues: configured });

    // Assess
    expect(flags).toEqual(expected);
  });

  it('reads config/queues.json: access-changes standard, offboarding FIFO', () => {
    // Act
    const flags = fifoFlags();

    // Assess
    expect(flags).toEqual({ accessChanges: false, offboarding: true });
  });

  it('validates like the handlers parse a body, with the position of each problem', () => {
    // Act
    const checked = validateEvents([eventFactory(), { id: 'x' }, 'text'], now);

    // Assess
    expect(checked.ok).toBe(false);
    if (!checked.ok) expect(checked.problems.map((problem) => problem.index)).toEqual([1, 2]);
  });
});

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { parseEventBody } from '../../lib/core/events.ts';
import { ErrorCodes } from '../../lib/errors.ts';
import {
  md5OfMessageAttributes,
  SqsEventBuildError,
  type SqsRecordInput,
  sqsEventOf,
  sqsRecordFactory,
} from '../../lib/local/lambda-events.ts';

/*
 * The committed events/sqs-*.json files are rebuilt here from events/bodies/*.json and compared.
 * To regenerate them after changing a body or the factory:
 *   UPDATE_EVENTS=1 npx vitest run test/unit/lambda-events.test.ts && npx biome format --write events
 */

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const eventsDir = join(root, 'events');
const queuesConfig = JSON.parse(readFileSync(join(root, 'config', 'queues.json'), 'utf8')) as {
  queues: Record<'accessChanges' | 'offboarding', { name: string; fifo: boolean }>;
};

/** The queues of the `dev` stage of serverless.yml in the default region, placeholder account. */
const queueArnOf = (queue: 'accessChanges' | 'offboarding'): string =>
  `arn:aws:sqs:eu-west-1:123456789012:swr-access-sync-dev-${queuesConfig.queues[queue].name}${queuesConfig.queues[queue].fifo ? '.fifo' : ''}`;

const bodyText = (file: string): string =>
  JSON.stringify(JSON.parse(readFileSync(join(eventsDir, 'bodies', file), 'utf8')));

/** A non-JSON body, as a broken producer would send it: the join body cut short. */
const truncatedBody = (): string => bodyText('membership-added.json').slice(0, 48);

/** Group and deduplication ids the way the producer (lib/local/producer.ts) chooses them. */
const recordOf = (
  queue: 'accessChanges' | 'offboarding',
  body: string,
  extra: Partial<SqsRecordInput> = {},
): SQSRecord => {
  let groupId = 'unparseable';
  let dedupId = createHash('sha256').update(body).digest('hex').slice(0, 64);
  try {
    const event = JSON.parse(body) as { id?: string; user?: { id?: string; name?: string } };
    groupId = event.user?.id ?? event.user?.name ?? groupId;
    dedupId = event.id ?? dedupId;
  } catch {
    // Not JSON: the fixed group and the body hash stand.
  }
  // A standard queue (access-changes) has neither.
  const ids = queuesConfig.queues[queue].fifo ? { groupId, dedupId } : {};
  return sqsRecordFactory({ body, ...ids, queueArn: queueArnOf(queue), ...extra });
};

/** Every committed Lambda event: file name -> how it is built. */
const sampleEvents: Record<string, () => SQSEvent> = {
  'sqs-join.json': () => sqsEventOf([recordOf('accessChanges', bodyText('membership-added.json'))]),
  'sqs-leave.json': () => sqsEventOf([recordOf('accessChanges', bodyText('membership-removed.json'))]),
  'sqs-teams.json': () => sqsEventOf([recordOf('accessChanges', bodyText('user-teams.json'))]),
  'sqs-name-only.json': () =>
    sqsEventOf([recordOf('accessChanges', bodyText('membership-added-name-only.json'))]),
  'sqs-offboard.json': () => sqsEventOf([recordOf('offboarding', bodyText('user-offboarded.json'))]),
  'sqs-contractor.json': () =>
    sqsEventOf([recordOf('accessChanges', bodyText('membership-added-contractor.json'))]),
  'sqs-last-day.json': () =>
    sqsEventOf([recordOf('accessChanges', bodyText('membership-removed-last-day.json'))]),
  'sqs-redelivered.json': () =>
    sqsEventOf([recordOf('accessChanges', bodyText('membership-added.json'), { receiveCount: 3 })]),
  'sqs-malformed.json': () =>
    sqsEventOf([
      recordOf('accessChanges', bodyText('membership-added.json')),
      recordOf('accessChanges', bodyText('malformed.json')),
      recordOf('accessChanges', truncatedBody()),
    ]),
  'sqs-batch.json': () =>
    sqsEventOf(
      [
        'membership-added.json',
        'membership-removed.json',
        'user-teams.json',
        'membership-added-name-only.json',
      ].map((file) => recordOf('accessChanges', bodyText(file))),
    ),
};

// The FIFO queue: its records carry a group, a dedup id and a sequence number.
const queueArn = queueArnOf('offboarding');
const inputFactory = (overrides: Partial<SqsRecordInput> = {}): SqsRecordInput => ({
  body: bodyText('membership-added.json'),
  groupId: 'a11ce000000000000000000000000001',
  dedupId: 'hr-2026-000101',
  queueArn,
  ...overrides,
});

describe('committed sample events', () => {
  if (process.env.UPDATE_EVENTS === '1') {
    for (const [file, build] of Object.entries(sampleEvents))
      writeFileSync(join(eventsDir, file), `${JSON.stringify(build(), null, 2)}\n`);
  }

  it.each(Object.keys(sampleEvents))('%s equals what the factory builds from the bodies', (file) => {
    // Prepare
    const committed: unknown = JSON.parse(readFileSync(join(eventsDir, file), 'utf8'));

    // Act
    const rebuilt = sampleEvents[file]!();

    // Assess
    expect(committed).toEqual(rebuilt);
  });

  it('has no stale sqs-*.json file that nothing builds any more', () => {
    // Act
    const files = readdirSync(eventsDir).filter((name) => /^sqs-.*\.json$/.test(name));

    // Assess
    expect(files.sort()).toEqual(Object.keys(sampleEvents).sort());
  });
});

describe('sample bodies', () => {
  const now = new Date('2026-11-23T00:00:00Z');

  it.each([
    ['membership-added.json', 'membership.added'],
    ['membership-removed.json', 'membership.removed'],
    ['user-teams.json', 'user.teams'],
    ['user-offboarded.json', 'user.offboarded'],
    ['membership-added-name-only.json', 'membership.added'],
    ['membership-added-contractor.json', 'membership.added'],
    ['membership-removed-last-day.json', 'membership.removed'],
  ])('%s is a valid %s event', (file, type) => {
    // Act
    const result = parseEventBody(bodyText(file), now);

    // Assess
    expect(result.ok && result.event.type).toBe(type);
  });

  it.each([
    ['malformed.json', bodyText('malformed.json'), ErrorCodes.schema],
    ['the truncated join body', truncatedBody(), ErrorCodes.invalidJson],
  ])('%s is rejected as %s', (_name, body, code) => {
    // Act
    const result = parseEventBody(body, now);

    // Assess
    expect(result.ok ? 'accepted' : result.error.code).toBe(code);
  });

  it.each([
    ['membership-added-contractor.json', ['effectiveAt', 'expiresAt']],
    ['membership-removed-last-day.json', ['effectiveAt']],
  ])('%s shows the time-bound fields %j, and the parser keeps them', (file, fields) => {
    // Act
    const result = parseEventBody(bodyText(file), now);

    // Assess
    expect(result.ok).toBe(true);
    const event = (result.ok ? result.event : {}) as Record<string, unknown>;
    for (const field of fields) expect(event[field]).toEqual(expect.stringMatching(/^\d{4}-\d\d-\d\dT/));
  });

  it('the name-only body carries no user id', () => {
    // Act
    const body = JSON.parse(bodyText('membership-added-name-only.json')) as { user: Record<string, string> };

    // Assess
    expect(Object.keys(body.user)).toEqual(['name']);
  });
});

describe('sqsRecordFactory', () => {
  it('builds a FIFO record the way Lambda delivers it', () => {
    // Prepare
    const input = inputFactory({ receiveCount: 2, sentAt: new Date('2026-11-20T10:00:01.000Z') });

    // Act
    const record = sqsRecordFactory(input);

    // Assess
    expect(record).toEqual({
      messageId: expect.stringMatching(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      ),
      receiptHandle: expect.stringMatching(/^AQEB[A-Za-z0-9+/=]+$/),
      body: input.body,
      attributes: {
        ApproximateReceiveCount: '2',
        SentTimestamp: String(Date.parse('2026-11-20T10:00:01.000Z')),
        SequenceNumber: expect.stringMatching(/^\d{20}$/),
        MessageGroupId: 'a11ce000000000000000000000000001',
        SenderId: expect.any(String),
        MessageDeduplicationId: 'hr-2026-000101',
        ApproximateFirstReceiveTimestamp: String(Date.parse('2026-11-20T10:00:01.025Z')),
      },
      messageAttributes: {},
      md5OfBody: createHash('md5').update(input.body).digest('hex'),
      eventSource: 'aws:sqs',
      eventSourceARN: queueArn,
      awsRegion: 'eu-west-1',
    });
  });

  it("computes md5OfBody as SQS does (AWS documentation's example)", () => {
    // Act
    const record = sqsRecordFactory(inputFactory({ body: 'Test message.' }));

    // Assess
    expect(record.md5OfBody).toBe('e4e68fb7bd0e697a0ae8f1bb342846b3');
  });

  it('computes md5OfMessageAttributes as SQS does (value from an independent implementation)', () => {
    // Prepare
    const messageAttributes = {
      traceparent: { dataType: 'String', stringValue: '00-abc-01' },
      attempt: { dataType: 'Number', stringValue: '3' },
      blob: { dataType: 'Binary', binaryValue: 'AQID+g==' },
    };

    // Act
    const record = sqsRecordFactory(inputFactory({ messageAttributes }));

    // Assess
    expect(record.md5OfMessageAttributes).toBe('966470fe5caf752caf6ddf7ef5945628');
    expect(md5OfMessageAttributes(messageAttributes)).toBe('966470fe5caf752caf6ddf7ef5945628');
  });

  it('leaves md5OfMessageAttributes out when there is no attribute', () => {
    // Act
    const record = sqsRecordFactory(inputFactory());

    // Assess
    expect(Object.keys(record)).not.toContain('md5OfMessageAttributes');
  });

  it('keeps the message id across receives and issues a new receipt handle each time', () => {
    // Act
    const first = sqsRecordFactory(inputFactory({ receiveCount: 1 }));
    const second = sqsRecordFactory(inputFactory({ receiveCount: 2 }));

    // Assess
    expect([second.messageId, second.receiptHandle === first.receiptHandle]).toEqual([
      first.messageId,
      false,
    ]);
  });

  it('gives distinct messages distinct ids', () => {
    // Act
    const ids = ['hr-1', 'hr-2', 'hr-3'].map(
      (dedupId) => sqsRecordFactory(inputFactory({ dedupId })).messageId,
    );

    // Assess
    expect(new Set(ids).size).toBe(3);
  });

  it.each([
    ['a body with occurredAt', bodyText('membership-added.json'), Date.parse('2026-11-20T10:00:01Z')],
    ['a zoned occurredAt', bodyText('user-teams.json'), Date.parse('2026-11-20T09:10:01Z')],
    ['a body that is not JSON', truncatedBody(), Date.UTC(2026, 10, 20, 10, 0, 0)],
    ['a body without occurredAt', '{"id":"x"}', Date.UTC(2026, 10, 20, 10, 0, 0)],
  ])('derives SentTimestamp from %s', (_name, body, expected) => {
    // Act
    const record = sqsRecordFactory(inputFactory({ body }));

    // Assess
    expect(record.attributes.SentTimestamp).toBe(String(expected));
  });

  it('numbers later messages of a group with larger sequence numbers', () => {
    // Prepare
    const times = [0, 1, 2, 60_000].map((offset) => Date.parse('2026-11-20T10:00:00Z') + offset);

    // Act
    const numbers = times.map((sentAt, index) =>
      BigInt(
        sqsRecordFactory(inputFactory({ sentAt, dedupId: `hr-${index}` })).attributes.SequenceNumber ?? 0,
      ),
    );

    // Assess
    expect(numbers.every((value, index) => index === 0 || value > numbers[index - 1]!)).toBe(true);
  });

  it('takes every explicit value as given', () => {
    // Act
    const record = sqsRecordFactory(
      inputFactory({
        messageId: 'my-id',
        sequenceNumber: '18849496460467696128',
        senderId: 'AIDAIO23YVJENQZJOL4VO',
        firstReceivedAt: 1573251510774,
      }),
    );

    // Assess
    expect([
      record.messageId,
      record.attributes.SequenceNumber,
      record.attributes.SenderId,
      record.attributes.ApproximateFirstReceiveTimestamp,
    ]).toEqual(['my-id', '18849496460467696128', 'AIDAIO23YVJENQZJOL4VO', '1573251510774']);
  });

  it.each([
    [
      'a group id on a standard queue',
      { queueArn: 'arn:aws:sqs:eu-west-1:123456789012:standard' },
      /standard queue has no message group/,
    ],
    ['a malformed ARN', { queueArn: 'access-changes.fifo' }, /ARN of an SQS queue/],
    ['a FIFO record without a group', { groupId: undefined }, /groupId/],
    ['a group id with a space', { groupId: 'alice smith' }, /groupId/],
    ['an empty group id', { groupId: '' }, /groupId/],
    ['a 129-character dedup id', { dedupId: 'x'.repeat(129) }, /dedupId/],
    ['receive count 0', { receiveCount: 0 }, /receiveCount/],
    ['a fractional receive count', { receiveCount: 1.5 }, /receiveCount/],
    ['an invalid sentAt', { sentAt: new Date('not a date') }, /sentAt/],
  ])('refuses %s', (_name, overrides, message) => {
    // Act
    const build = () => sqsRecordFactory(inputFactory(overrides));

    // Assess
    expect(build).toThrow(SqsEventBuildError);
    expect(build).toThrow(message);
  });
});

describe('sqsRecordFactory on a standard queue', () => {
  it('builds a record without group, deduplication id or sequence number', () => {
    // Act
    const record = sqsRecordFactory({
      body: bodyText('membership-added.json'),
      queueArn: queueArnOf('accessChanges'),
    });

    // Assess
    expect(record.eventSourceARN).toBe(queueArnOf('accessChanges'));
    expect(record.attributes).not.toHaveProperty('MessageGroupId');
    expect(record.attributes).not.toHaveProperty('MessageDeduplicationId');
    expect(record.attributes).not.toHaveProperty('SequenceNumber');
  });

  it('wraps a batch above 10, as a standard queue with a batching window delivers it, up to 10,000', () => {
    // Prepare
    const standard = (count: number) =>
      Array.from({ length: count }, (_, index) =>
        sqsRecordFactory({ body: `{"n":${index}}`, queueArn: queueArnOf('accessChanges') }),
      );

    // Act + Assess
    expect(sqsEventOf(standard(1000)).Records).toHaveLength(1000);
    expect(() => sqsEventOf(standard(10_001))).toThrow(/at most 10000/);
  });
});

describe('sqsEventOf', () => {
  const recordsFactory = (count: number): SQSRecord[] =>
    Array.from({ length: count }, (_, index) => sqsRecordFactory(inputFactory({ dedupId: `hr-${index}` })));

  it('wraps up to 10 records in order', () => {
    // Prepare
    const records = recordsFactory(10);

    // Act
    const event = sqsEventOf(records);

    // Assess
    expect(event).toEqual({ Records: records });
  });

  it.each([
    ['no record', () => [], /at least one/],
    ['11 records', () => recordsFactory(11), /at most 10/],
    [
      'records of two queues',
      () => [...recordsFactory(1), sqsRecordFactory({ body: '{}', queueArn: queueArnOf('accessChanges') })],
      /same queue/,
    ],
    ['one message twice', () => [...recordsFactory(1), ...recordsFactory(1)], /at most once/],
  ])('refuses %s', (_name, records, message) => {
    // Act
    const build = () => sqsEventOf(records());

    // Assess
    expect(build).toThrow(SqsEventBuildError);
    expect(build).toThrow(message);
  });
});

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { allCustomMatcher } from 'aws-sdk-client-mock-vitest';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  auditByUser,
  auditSortKey,
  createDynamoAuditStore,
  createMemoryAuditStore,
  fromAuditItem,
  toAuditItem,
} from '../../lib/audit/index.ts';
import { toTargetIndexItem } from '../../lib/audit/items.ts';
import { StoreError } from '../../lib/errors.ts';
import type { AuditRecord } from '../../lib/observability.ts';
import { target, userId } from '../support/factories.ts';

expect.extend(allCustomMatcher);

const documentMock = mockClient(DynamoDBDocumentClient);

/** An audit record of user `n` at minute `minute` of a fixed hour. */
const auditRecordFactory = (
  n: number,
  minute: number,
  overrides: Partial<AuditRecord> = {},
): AuditRecord => ({
  at: `2026-11-20T10:${String(minute).padStart(2, '0')}:00.000Z`,
  actor: 'sync',
  eventIds: [`e-${n}-${minute}`],
  sources: ['workday'],
  userId: userId(n),
  userName: `user${n}`,
  target: target('core/api/server'),
  before: undefined,
  after: 3,
  dryRun: false,
  ...overrides,
});

describe('audit items', () => {
  it.each([
    ['a repository grant', auditRecordFactory(1, 0)],
    [
      'a namespace revoke',
      auditRecordFactory(2, 5, { target: target('tools'), before: 7, after: undefined }),
    ],
    ['a dry-run change', auditRecordFactory(3, 9, { before: 1, after: 3, dryRun: true, sources: [] })],
    [
      'a reconcile repair with its reason',
      auditRecordFactory(4, 12, { actor: 'reconcile', eventIds: [], sources: [], reason: 'drift' }),
    ],
  ])('round-trips %s', (_name, record) => {
    // Act
    const item = toAuditItem(record, 400);

    // Assess
    expect(item.pk).toBe(`USER#${record.userId}`);
    expect(item.sk).toMatch(new RegExp(`^AUDIT#${record.at.replace(/\./g, '\\.')}#[0-9a-f]{16}$`));
    expect(item.expiresAtEpoch).toBe(Date.parse(record.at) / 1000 + 400 * 86_400);
    expect(fromAuditItem(item)).toEqual(record);
  });

  it('stores the record again under its target, with the same sort key', () => {
    // Prepare
    const record = auditRecordFactory(1, 0, { reason: 'membership expired' });

    // Act
    const item = toTargetIndexItem(record, 400);

    // Assess
    expect(item.pk).toBe('TARGET#core/api/server');
    expect(item.sk).toBe(auditSortKey(record));
    expect(fromAuditItem(item)).toEqual(record);
  });

  it('keeps the key of a record without a reason as it was before reasons were kept', () => {
    // Prepare
    const record = auditRecordFactory(1, 0);

    // Act / Assess: the digest of the fields every record had (changing it would duplicate history)
    expect(auditSortKey(record)).toBe(auditSortKey({ ...record, reason: undefined }));
    expect(auditSortKey(record)).not.toBe(auditSortKey({ ...record, reason: 'drift' }));
  });

  it('gives two changes of one instant distinct keys, and one change the same key twice', () => {
    // Prepare
    const first = auditRecordFactory(1, 0);
    const other = auditRecordFactory(1, 0, { target: target('core/api/worker') });

    // Act / Assess
    expect(auditSortKey(first)).not.toBe(auditSortKey(other));
    expect(auditSortKey(first)).toBe(auditSortKey({ ...first }));
  });

  it('refuses a malformed item with a StoreError', () => {
    // Act / Assess
    expect(() => fromAuditItem({ pk: 'USER#x', sk: 'AUDIT#1', at: 'now' })).toThrow(StoreError);
  });
});

describe('auditByUser over the memory store', () => {
  const seeded = async () => {
    const store = createMemoryAuditStore();
    await store.write([auditRecordFactory(1, 1), auditRecordFactory(2, 2), auditRecordFactory(1, 3)]);
    await store.write([auditRecordFactory(1, 2, { after: 7, before: 3 })]);
    return store;
  };

  it.each([
    ['its id', userId(1)],
    ['its name', 'user1'],
  ])('lists a user by %s, newest first', async (_how, who) => {
    // Prepare
    const store = await seeded();

    // Act
    const { userIds, records } = await auditByUser(store, who);

    // Assess
    expect(userIds).toEqual([userId(1)]);
    expect(records.map((record) => record.at.slice(11, 16))).toEqual(['10:03', '10:02', '10:01']);
  });

  it('keeps to --limit', async () => {
    // Prepare
    const store = await seeded();

    // Act
    const { records } = await auditByUser(store, 'user1', { limit: 2 });

    // Assess
    expect(records.map((record) => record.at.slice(11, 16))).toEqual(['10:03', '10:02']);
  });

  it('merges every user id a name was written under (a reused name)', async () => {
    // Prepare
    const store = await seeded();
    await store.write([auditRecordFactory(9, 4, { userName: 'user1' })]);

    // Act
    const { userIds, records } = await auditByUser(store, 'user1');

    // Assess
    expect(userIds).toEqual([userId(1), userId(9)]);
    expect(records[0]?.userId).toBe(userId(9));
    expect(records).toHaveLength(4);
  });

  it('answers nothing for a stranger', async () => {
    // Prepare
    const store = await seeded();

    // Act
    const answer = await auditByUser(store, 'mallory');

    // Assess
    expect(answer).toEqual({ userIds: [], records: [] });
  });

  it('keeps a record written twice once', async () => {
    // Prepare
    const store = createMemoryAuditStore();

    // Act
    await store.write([auditRecordFactory(1, 1), auditRecordFactory(1, 1)]);

    // Assess
    expect(store.all()).toHaveLength(1);
  });
});

describe('the memory audit store', () => {
  it('lists a target, every user, newest first', async () => {
    // Prepare
    const store = createMemoryAuditStore();
    await store.write([
      auditRecordFactory(1, 1),
      auditRecordFactory(2, 3),
      auditRecordFactory(3, 2, { target: target('core/api/worker') }),
      auditRecordFactory(4, 4, { target: target('core') }),
    ]);

    // Act
    const repository = await store.listByTarget(target('core/api/server'));
    const namespace = await store.listByTarget(target('core'));

    // Assess
    expect(repository.map((record) => record.userName)).toEqual(['user2', 'user1']);
    expect(namespace.map((record) => record.userName)).toEqual(['user4']);
  });

  it('keeps no dry-run record', async () => {
    // Prepare
    const store = createMemoryAuditStore();

    // Act
    await store.write([auditRecordFactory(1, 1, { dryRun: true }), auditRecordFactory(2, 2)]);

    // Assess
    expect(store.all().map((record) => record.userName)).toEqual(['user2']);
  });
});

describe('DynamoDB audit store writes', () => {
  const fastSleep = async () => undefined;

  beforeEach(() => {
    documentMock.reset();
  });

  it('writes in BatchWriteItem calls of 25, with a target item per record and a name-index item per user', async () => {
    // Prepare
    documentMock.on(BatchWriteCommand).resolves({ UnprocessedItems: {} });
    const store = createDynamoAuditStore({ client: new DynamoDBClient({}), tableName: 'memberships' });
    const records = Array.from({ length: 20 }, (_, index) => auditRecordFactory(index % 4, index));

    // Act
    await store.write(records);

    // Assess: 20 audit items + 20 target items + 4 name-index items
    const sizes = documentMock
      .commandCalls(BatchWriteCommand)
      .map((call) => call.args[0].input.RequestItems?.memberships?.length);
    expect(sizes).toEqual([25, 19]);
    await store.write([...records, ...records.map((record) => ({ ...record, actor: 'offboard' }))]);
    const later = documentMock
      .commandCalls(BatchWriteCommand)
      .slice(2)
      .map((call) => call.args[0].input.RequestItems?.memberships?.length);
    expect(later).toEqual([25, 25, 25, 9]);
  });

  it('writes nothing for dry-run records', async () => {
    // Prepare
    documentMock.on(BatchWriteCommand).resolves({ UnprocessedItems: {} });
    const store = createDynamoAuditStore({ client: new DynamoDBClient({}), tableName: 'memberships' });

    // Act
    await store.write([
      auditRecordFactory(1, 1, { dryRun: true }),
      auditRecordFactory(2, 2, { dryRun: true }),
    ]);

    // Assess
    expect(documentMock).toHaveReceivedCommandTimes(BatchWriteCommand, 0);
  });

  it('sends unprocessed items again until they are taken', async () => {
    // Prepare
    const record = auditRecordFactory(1, 1);
    const leftOver = [{ PutRequest: { Item: toAuditItem(record, 400) } }];
    documentMock
      .on(BatchWriteCommand)
      .resolvesOnce({ UnprocessedItems: { memberships: leftOver } })
      .resolves({ UnprocessedItems: {} });
    const store = createDynamoAuditStore({
      client: new DynamoDBClient({}),
      tableName: 'memberships',
      sleep: fastSleep,
    });

    // Act
    await store.write([record]);

    // Assess
    expect(documentMock).toHaveReceivedCommandTimes(BatchWriteCommand, 2);
    expect(documentMock).toHaveReceivedNthCommandWith(BatchWriteCommand, 2, {
      RequestItems: { memberships: leftOver },
    });
  });

  it.each([
    [
      'items stay unprocessed',
      () =>
        documentMock
          .on(BatchWriteCommand)
          .resolves({ UnprocessedItems: { memberships: [{ PutRequest: { Item: { pk: 'x', sk: 'y' } } }] } }),
      /unprocessed after 3 attempts/,
    ],
    [
      'the call fails',
      () => documentMock.on(BatchWriteCommand).rejects(new Error('throttled')),
      /audit write \(3 items\) failed: Error: throttled/,
    ],
  ])('throws a retryable StoreError when %s', async (_name, arrange, message) => {
    // Prepare
    arrange();
    const store = createDynamoAuditStore({
      client: new DynamoDBClient({}),
      tableName: 'memberships',
      maxAttempts: 3,
      sleep: fastSleep,
    });

    // Act
    const written = store.write([auditRecordFactory(1, 1)]);

    // Assess
    await expect(written).rejects.toThrow(message);
    await expect(written).rejects.toMatchObject({ retryable: true });
  });
});

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ConditionalCheckFailedException,
  DescribeTableCommand,
  DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MembershipStorePort, ResolvedEvent, UserRecord } from '../../lib/domain.ts';
import { ErrorCodes, StoreError, SyncError } from '../../lib/errors.ts';
import { maxRecordItemBytes, recordItemBytes } from '../../lib/store/bounds.ts';
import {
  createDynamoStore,
  createMemoryStore,
  ensureTable,
  stateSortKey,
  userPartitionKey,
} from '../../lib/store/index.ts';
import { dynamoItemLimitBytes, dynamoMapEntrySize } from '../../lib/store/item-size.ts';

// dynalite ships no types; a variable specifier keeps TypeScript from asking for them.
const dynaliteModule = 'dynalite';
type Dynalite = (options: Record<string, number>) => Server;

const hex = (n: number): string => n.toString(16).padStart(32, '0');
const userFactory = (n = 1) => ({ id: hex(n), name: `user${String(n).padStart(2, '0')}` });
const at = (minute: number): string => new Date(Date.UTC(2026, 10, 20, 10, minute)).toISOString();

let eventSequence = 0;
const joinEvent = (user: { id: string; name: string }, team: string, minute = 0): ResolvedEvent => ({
  id: `evt-${++eventSequence}`,
  type: 'membership.added',
  occurredAt: at(minute),
  user,
  team,
});

const collect = async (iterable: AsyncIterable<UserRecord>): Promise<UserRecord[]> => {
  const records: UserRecord[] = [];
  for await (const record of iterable) records.push(record);
  return records.sort((a, b) => (a.userId < b.userId ? -1 : 1));
};

let server: Server;
let endpoint: string;
let tableCount = 0;

beforeAll(async () => {
  const dynalite = ((await import(dynaliteModule)) as { default: Dynalite }).default;
  server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
});

const dynamoClient = (): DynamoDBClient =>
  new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'fake', secretAccessKey: 'fake' },
  });

/** A fresh table per store, so every test starts empty. */
const freshTable = async (client: DynamoDBClient): Promise<string> => {
  const tableName = `membership-${process.pid}-${++tableCount}`;
  await ensureTable(client, tableName);
  return tableName;
};

interface AdapterOptions {
  scanPageSize?: number;
  now?: () => Date;
  /** Records stored before the test, as raw items (an older version may have written them). */
  initial?: UserRecord[];
  itemBudget?: number;
}

interface Adapter {
  name: string;
  create(options?: AdapterOptions): Promise<MembershipStorePort>;
}

const adapters: Adapter[] = [
  {
    name: 'memory',
    create: async ({ scanPageSize: _pageSize, ...options } = {}) => createMemoryStore(options),
  },
  {
    name: 'dynamo',
    create: async ({ initial = [], ...options } = {}) => {
      const client = dynamoClient();
      const tableName = await freshTable(client);
      const documents = DynamoDBDocumentClient.from(client);
      for (const record of initial)
        await documents.send(
          new PutCommand({
            TableName: tableName,
            Item: { pk: userPartitionKey(record.userId), sk: stateSortKey, ...record },
          }),
        );
      return createDynamoStore({ client, tableName, ...options });
    },
  },
];

describe.each(adapters)('membership store contract: $name', (adapter) => {
  it('knows nothing of a user never stored', async () => {
    // Prepare
    const store = await adapter.create();

    // Act
    const record = await store.get(userFactory().id);

    // Assess
    expect(record).toBeUndefined();
    expect(await collect(store.list())).toEqual([]);
  });

  it('stores the first applied event as version 1 and reads it back', async () => {
    // Prepare
    const store = await adapter.create();
    const user = userFactory();

    // Act
    const result = await store.apply(user, [joinEvent(user, 'platform')]);

    // Assess
    expect(result.before).toBeUndefined();
    expect(result.written).toBe(true);
    expect(result.outcomes.map((o) => o.status)).toEqual(['applied']);
    expect(result.after).toMatchObject({ userId: user.id, userName: user.name, version: 1 });
    expect(result.after.teams.platform?.member).toBe(true);
    expect(result.after.updatedAt).toEqual(expect.any(String));
    expect(await store.get(user.id)).toEqual(result.after);
  });

  it('applies several events in order with one write (one version step)', async () => {
    // Prepare
    const store = await adapter.create();
    const user = userFactory();
    await store.apply(user, [joinEvent(user, 'platform', 0)]);
    const removal: ResolvedEvent = {
      id: 'rm',
      type: 'membership.removed',
      occurredAt: at(2),
      user,
      team: 'platform',
    };
    const lateJoin = joinEvent(user, 'platform', 1);

    // Act
    const result = await store.apply(user, [joinEvent(user, 'sre', 1), removal, lateJoin]);

    // Assess
    expect(result.before?.version).toBe(1);
    expect(result.outcomes.map((o) => o.status)).toEqual(['applied', 'applied', 'stale']);
    expect(result.after.version).toBe(2);
    expect(result.after.teams).toMatchObject({
      sre: { member: true },
      platform: { member: false, eventId: 'rm' },
    });
    expect(await store.get(user.id)).toEqual(result.after);
  });

  it('writes nothing when no event applies (duplicates, stale facts)', async () => {
    // Prepare
    const store = await adapter.create();
    const user = userFactory();
    const join = joinEvent(user, 'platform', 5);
    const stored = (await store.apply(user, [join])).after;

    // Act
    const result = await store.apply(user, [
      join,
      { id: 'late-removal', type: 'membership.removed', occurredAt: at(1), user, team: 'platform' },
    ]);

    // Assess
    expect(result.written).toBe(false);
    expect(result.outcomes.map((o) => o.status)).toEqual(['duplicate', 'stale']);
    expect(await store.get(user.id)).toEqual(stored);
  });

  it('keeps the tombstone and lets it beat an older join that arrives later', async () => {
    // Prepare
    const store = await adapter.create();
    const user = userFactory();
    await store.apply(user, [{ id: 'off', type: 'user.offboarded', occurredAt: at(10), user }]);

    // Act
    const result = await store.apply(user, [joinEvent(user, 'platform', 9)]);

    // Assess
    expect(result.outcomes.map((o) => o.status)).toEqual(['superseded-by-offboarding']);
    expect(await store.get(user.id)).toMatchObject({ offboardedAt: at(10), teams: {}, version: 1 });
  });

  it('keeps the snapshot instant', async () => {
    // Prepare
    const store = await adapter.create();
    const user = userFactory();

    // Act
    await store.apply(user, [{ id: 'snap', type: 'user.teams', occurredAt: at(3), user, teams: ['a'] }]);

    // Assess
    expect(await store.get(user.id)).toMatchObject({ snapshotAt: at(3), teams: { a: { member: true } } });
  });

  it('loses no update when writers race on the same user', async () => {
    // Prepare
    const store = await adapter.create();
    const user = userFactory();
    // Each write beats at most the others once: 8 writers fit the default 8 attempts.
    const teams = Array.from({ length: 8 }, (_, i) => `team-${i}`);

    // Act
    const results = await Promise.all(teams.map((team, i) => store.apply(user, [joinEvent(user, team, i)])));

    // Assess
    expect(results.every((r) => r.written)).toBe(true);
    expect(results.map((r) => r.after.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const final = await store.get(user.id);
    expect(final?.version).toBe(8);
    expect(Object.keys(final?.teams ?? {}).sort()).toEqual(teams);
  });

  it('lists every stored user', async () => {
    // Prepare
    const store = await adapter.create({ scanPageSize: 2 });
    const users = [1, 2, 3, 4, 5].map(userFactory);
    for (const user of users) await store.apply(user, [joinEvent(user, 'platform')]);

    // Act
    const listed = await collect(store.list());

    // Assess
    expect(listed.map((r) => r.userId)).toEqual(users.map((u) => u.id));
    expect(listed.every((r) => r.version === 1 && r.teams.platform?.member === true)).toBe(true);
  });

  it('hands out copies: changing a returned record changes nothing stored', async () => {
    // Prepare
    const store = await adapter.create();
    const user = userFactory();
    const { after } = await store.apply(user, [joinEvent(user, 'platform')]);

    // Act
    after.teams.platform = { member: false, at: at(59), eventId: 'forged' };
    after.version = 99;

    // Assess
    expect(await store.get(user.id)).toMatchObject({ version: 1, teams: { platform: { member: true } } });
  });

  it('refuses events about another user', async () => {
    // Prepare
    const store = await adapter.create();
    const user = userFactory(1);

    // Act
    const applying = store.apply(user, [joinEvent(userFactory(2), 'platform')]);

    // Assess
    await expect(applying).rejects.toBeInstanceOf(SyncError);
    expect(await store.get(user.id)).toBeUndefined();
  });
});

describe('dynamo adapter: table and item layout', () => {
  it('creates the table once, PAY_PER_REQUEST with pk/sk, and tolerates a second ensureTable', async () => {
    // Prepare
    const client = dynamoClient();
    const tableName = await freshTable(client);

    // Act
    await ensureTable(client, tableName);
    const described = await client.send(new DescribeTableCommand({ TableName: tableName }));

    // Assess
    expect(described.Table?.TableStatus).toBe('ACTIVE');
    expect(described.Table?.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(described.Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
  });

  it('stores USER#<id>/STATE items and lists only STATE items', async () => {
    // Prepare
    const client = dynamoClient();
    const tableName = await freshTable(client);
    const documents = DynamoDBDocumentClient.from(client);
    const store = createDynamoStore({ client: documents, tableName, scanPageSize: 1 });
    const user = userFactory(7);
    await store.apply(user, [joinEvent(user, 'platform')]);
    for (const n of [1, 2, 3])
      await documents.send(
        new PutCommand({
          TableName: tableName,
          Item: { pk: userPartitionKey(user.id), sk: `AUDIT#${at(n)}`, note: 'audit' },
        }),
      );

    // Act
    const raw = await documents.send(
      new GetCommand({ TableName: tableName, Key: { pk: `USER#${user.id}`, sk: 'STATE' } }),
    );
    const listed = await collect(store.list());

    // Assess
    expect(stateSortKey).toBe('STATE');
    expect(raw.Item).toMatchObject({ userId: user.id, userName: user.name, version: 1 });
    expect(listed.map((r) => r.userId)).toEqual([user.id]);
  });
});

describe('dynamo adapter: failures', () => {
  const user = userFactory(3);

  const mockedStore = (maxAttempts = 3) => {
    const documents = DynamoDBDocumentClient.from(
      new DynamoDBClient({
        region: 'us-east-1',
        credentials: { accessKeyId: 'fake', secretAccessKey: 'fake' },
      }),
    );
    const mock = mockClient(documents);
    const store = createDynamoStore({ client: documents, tableName: 'membership', maxAttempts });
    return { mock, store };
  };

  it.each([
    ['a read', 'get'],
    ['a read before a write', 'apply'],
  ] as const)(
    'turns a failed %s into a retryable StoreError with the cause kept',
    async (_name, operation) => {
      // Prepare
      const { mock, store } = mockedStore();
      const cause = Object.assign(new Error('Throughput exceeds the current capacity'), {
        name: 'ProvisionedThroughputExceededException',
      });
      mock.on(GetCommand).rejects(cause);

      // Act
      const running =
        operation === 'get' ? store.get(user.id) : store.apply(user, [joinEvent(user, 'platform')]);

      // Assess
      const error = await running.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({ code: ErrorCodes.store, retryable: true, cause });
      expect(mock.commandCalls(PutCommand)).toHaveLength(0);
    },
  );

  it.each([
    [
      'an item over the size limit',
      'ValidationException',
      'Item size has exceeded the maximum allowed size',
      { code: ErrorCodes.storeItemTooLarge, retryable: false },
      /write for user .* refused: the item \(\d+ bytes by our count\) is over DynamoDB's 400 KB/,
    ],
    [
      'any other invalid request (a bug)',
      'ValidationException',
      'One or more parameter values were invalid: Missing the key pk in the item',
      { code: ErrorCodes.storeRequestInvalid, retryable: false },
      /refused as invalid, a bug to report/,
    ],
    [
      'a missing table',
      'ResourceNotFoundException',
      'Requested resource not found',
      { code: ErrorCodes.store, retryable: true },
      /table membership does not exist .*check TABLE_NAME/,
    ],
    [
      'throttling',
      'ThrottlingException',
      'Rate of requests exceeds the allowed throughput',
      { code: ErrorCodes.store, retryable: true },
      /failed: ThrottlingException/,
    ],
  ])('classifies a write refused for %s', async (_case, name, message, expected, reason) => {
    // Prepare
    const { mock, store } = mockedStore();
    mock.on(GetCommand).resolves({});
    mock.on(PutCommand).rejects(Object.assign(new Error(message), { name }));

    // Act
    const error = await store.apply(user, [joinEvent(user, 'platform')]).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Assess
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject(expected);
    expect((error as Error).message).toMatch(reason);
    expect(mock.commandCalls(PutCommand)).toHaveLength(1);
  });

  it('gives up with a retryable STORE_CONFLICT after the bounded attempts', async () => {
    // Prepare
    const { mock, store } = mockedStore(3);
    mock.on(GetCommand).resolves({});
    mock
      .on(PutCommand)
      .rejects(new ConditionalCheckFailedException({ message: 'conditional', $metadata: {} }));

    // Act
    const error = await store.apply(user, [joinEvent(user, 'platform')]).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Assess
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: ErrorCodes.conflict, retryable: true });
    expect(mock.commandCalls(GetCommand)).toHaveLength(3);
    expect(mock.commandCalls(PutCommand)).toHaveLength(3);
  });

  it('writes with the version read as the condition', async () => {
    // Prepare
    const { mock, store } = mockedStore();
    mock.on(GetCommand).resolves({
      Item: {
        pk: `USER#${user.id}`,
        sk: 'STATE',
        userId: user.id,
        userName: user.name,
        teams: {},
        version: 4,
      },
    });
    mock.on(PutCommand).resolves({});

    // Act
    const result = await store.apply(user, [joinEvent(user, 'platform')]);

    // Assess
    expect(result.after.version).toBe(5);
    const put = mock.commandCalls(PutCommand)[0]?.args[0].input;
    expect(put).toMatchObject({
      ConditionExpression: '#version = :version',
      ExpressionAttributeValues: { ':version': 4 },
      Item: { pk: `USER#${user.id}`, sk: 'STATE', version: 5 },
    });
    expect(mock.commandCalls(GetCommand)[0]?.args[0].input).toMatchObject({ ConsistentRead: true });
  });

  it('turns a failed write into a retryable StoreError', async () => {
    // Prepare
    const { mock, store } = mockedStore();
    mock.on(GetCommand).resolves({});
    mock.on(PutCommand).rejects(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));

    // Act
    const error = await store.apply(user, [joinEvent(user, 'platform')]).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Assess
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: ErrorCodes.store, retryable: true });
    expect(mock.commandCalls(PutCommand)).toHaveLength(1);
  });

  it('refuses an item whose pending event is not a resolved event', async () => {
    // Prepare
    const { mock, store } = mockedStore();
    const pending = {
      id: 'p',
      type: 'membership.added',
      occurredAt: at(1),
      user: { id: user.id },
      team: 'a',
    };
    mock.on(GetCommand).resolves({
      Item: {
        pk: `USER#${user.id}`,
        sk: 'STATE',
        userId: user.id,
        userName: user.name,
        teams: {},
        version: 1,
        pending: [pending],
      },
    });

    // Act
    const settling = store.applyDue(user.id, new Date(at(2)));

    // Assess
    await expect(settling).rejects.toBeInstanceOf(StoreError);
    expect(mock.commandCalls(PutCommand)).toHaveLength(0);
  });

  it('refuses a malformed item instead of treating it as "no teams"', async () => {
    // Prepare
    const { mock, store } = mockedStore();
    mock
      .on(GetCommand)
      .resolves({ Item: { pk: `USER#${user.id}`, sk: 'STATE', userId: user.id, teams: 'oops' } });

    // Act
    const reading = store.get(user.id);

    // Assess
    await expect(reading).rejects.toBeInstanceOf(StoreError);
    await expect(reading).rejects.toMatchObject({ retryable: true });
  });
});

describe.each(adapters)('membership store contract, time-bound access: $name', (adapter) => {
  const user = userFactory(9);
  /** Day `n` of November 2026: the controlled clock. */
  const day = (n: number): string => new Date(Date.UTC(2026, 10, n, 9)).toISOString();
  const on = (n: number): Date => new Date(day(n));
  /** A join on day 1 (the shared `joinEvent` is on the 20th). */
  const join = (team: string): Extract<ResolvedEvent, { type: 'membership.added' }> => ({
    id: `evt-${++eventSequence}`,
    type: 'membership.added',
    occurredAt: day(1),
    user,
    team,
  });
  const lastDay = (): ResolvedEvent => ({
    id: 'last-day',
    type: 'membership.removed',
    occurredAt: day(2),
    effectiveAt: day(10),
    user,
    team: 'platform',
  });

  it('keeps a future-effective event pending (written, deferred) and the access until it is due', async () => {
    // Prepare
    const store = await adapter.create();
    await store.apply(user, [join('platform')], on(1));

    // Act
    const result = await store.apply(user, [lastDay()], on(2));

    // Assess
    expect(result.written).toBe(true);
    expect(result.outcomes.map((o) => o.status)).toEqual(['deferred']);
    expect(result.after.version).toBe(2);
    const stored = await store.get(user.id);
    expect(stored?.pending).toEqual([lastDay()]);
    expect(stored?.teams.platform?.member).toBe(true);
    expect((await collect(store.list()))[0]?.pending?.map((e) => e.id)).toEqual(['last-day']);
  });

  it('does not write the same pending event twice', async () => {
    // Prepare
    const store = await adapter.create();
    await store.apply(user, [lastDay()], on(2));

    // Act
    const again = await store.apply(user, [lastDay()], on(3));

    // Assess
    expect(again.written).toBe(false);
    expect(again.outcomes.map((o) => o.status)).toEqual(['duplicate']);
    expect((await store.get(user.id))?.version).toBe(1);
  });

  it('applyDue writes nothing before the event is due, and applies it once due', async () => {
    // Prepare
    const store = await adapter.create();
    await store.apply(user, [join('platform'), lastDay()], on(2));

    // Act
    const early = await store.applyDue(user.id, on(9));
    const due = await store.applyDue(user.id, on(10));

    // Assess
    expect(early?.written).toBe(false);
    expect(early?.outcomes).toEqual([]);
    expect(due?.written).toBe(true);
    expect(due?.before?.version).toBe(1);
    expect(due?.after.version).toBe(2);
    expect(due?.outcomes).toMatchObject([
      { eventId: 'last-day', status: 'applied', changedTeams: ['platform'] },
    ]);
    expect(due?.settled).toEqual(due?.outcomes);
    const stored = await store.get(user.id);
    expect(stored?.pending).toBeUndefined();
    expect(stored?.teams.platform).toEqual({ member: false, at: day(10), eventId: 'last-day' });
  });

  it('applyDue ends an expired membership at expiresAt', async () => {
    // Prepare
    const store = await adapter.create();
    const contract: ResolvedEvent = { ...join('contractors'), id: 'contract', expiresAt: day(5) };
    await store.apply(user, [contract], on(1));

    // Act
    const result = await store.applyDue(user.id, on(6));

    // Assess
    expect(result?.written).toBe(true);
    expect(result?.outcomes).toMatchObject([
      { eventId: 'contract', status: 'applied', changedTeams: ['contractors'] },
    ]);
    expect((await store.get(user.id))?.teams.contractors).toEqual({
      member: false,
      at: day(5),
      eventId: 'contract',
    });
  });

  it('applyDue knows nothing of a user never stored', async () => {
    // Prepare
    const store = await adapter.create();

    // Act
    const result = await store.applyDue(user.id, on(1));

    // Assess
    expect(result).toBeUndefined();
    expect(await store.get(user.id)).toBeUndefined();
  });

  it('apply settles what is due before the new events (the queue handler when already due)', async () => {
    // Prepare
    const store = await adapter.create();
    await store.apply(user, [join('platform'), lastDay()], on(2));

    // Act
    const result = await store.apply(user, [{ ...join('sre'), occurredAt: day(11) }], on(11));

    // Assess
    expect(result.outcomes.map((o) => o.status)).toEqual(['applied']);
    expect(result.settled?.map((o) => o.eventId)).toEqual(['last-day']);
    expect(result.after.teams).toMatchObject({ platform: { member: false }, sre: { member: true } });
    expect(await store.get(user.id)).toEqual(result.after);
  });

  it("apply without a clock uses the store's", async () => {
    // Prepare
    const store = await adapter.create({ now: () => on(12) });

    // Act
    const result = await store.apply(user, [lastDay()]);

    // Assess
    expect(result.outcomes.map((o) => o.status)).toEqual(['applied']);
    expect(result.after.pending).toBeUndefined();
    expect(result.after.updatedAt).toBe(day(12));
  });

  it('keeps a pending snapshot, expiresAt and effectiveAt intact through a write and a read', async () => {
    // Prepare
    const store = await adapter.create();
    const snapshot: ResolvedEvent = {
      id: 'snap',
      type: 'user.teams',
      occurredAt: day(1),
      effectiveAt: day(20),
      source: 'hr',
      user,
      teams: ['a', 'b'],
    };
    const contract: ResolvedEvent = {
      id: 'contract',
      type: 'membership.added',
      occurredAt: day(1),
      effectiveAt: day(15),
      expiresAt: day(30),
      user,
      team: 'contractors',
    };

    // Act
    await store.apply(user, [snapshot, contract], on(1));
    const stored = await store.get(user.id);

    // Assess
    expect(stored?.pending).toEqual([contract, snapshot]);
  });

  it('loses no pending event when writers race on the same user', async () => {
    // Prepare
    const store = await adapter.create();
    const events = Array.from(
      { length: 6 },
      (_, i): ResolvedEvent => ({
        ...join(`team-${i}`),
        id: `future-${i}`,
        effectiveAt: day(20 + i),
      }),
    );

    // Act
    await Promise.all(events.map((event) => store.apply(user, [event], on(1))));

    // Assess
    const stored = await store.get(user.id);
    expect(stored?.version).toBe(6);
    expect(stored?.pending?.map((e) => e.id)).toEqual(events.map((e) => e.id));
  });
});

describe.each(adapters)('membership store contract, item bounds: $name', (adapter) => {
  const user = userFactory(11);
  const minute = (n: number): string => new Date(Date.UTC(2026, 10, 20, 0, n)).toISOString();

  /**
   * A record as an older version could have stored it: just under DynamoDB's 400 KB, most of it
   * left-team markers from removals at minutes 100 and later (no watermark makes them redundant),
   * and a few current memberships.
   */
  const nearLimitRecord = (): UserRecord => {
    const teams: UserRecord['teams'] = {
      platform: { member: true, at: minute(1), eventId: 'join-platform' },
      data: { member: true, at: minute(2), eventId: 'join-data' },
    };
    const base: UserRecord = { userId: user.id, userName: user.name, teams, version: 7 };
    for (let n = 0, bytes = recordItemBytes(base); bytes < dynamoItemLimitBytes - 3_000; n += 1) {
      const team = `left-team-${String(n).padStart(90, '0')}`;
      const fact = {
        member: false,
        at: minute(100 + (n % 1000)),
        eventId: `removal-${String(n).padStart(30, '0')}`,
      };
      teams[team] = fact;
      bytes += dynamoMapEntrySize(team, fact);
    }
    expect(recordItemBytes(base)).toBeGreaterThan(maxRecordItemBytes);
    return base;
  };

  it('offboards a user whose record is near the item limit, even with a late tombstone', async () => {
    // Prepare
    const record = nearLimitRecord();
    const store = await adapter.create({ initial: [record] });
    const offboarding: ResolvedEvent = {
      id: 'bye',
      type: 'user.offboarded',
      occurredAt: minute(50),
      user,
    };

    // Act
    const result = await store.apply(user, [offboarding], new Date(minute(2000)));

    // Assess
    expect(result.written).toBe(true);
    expect(result.outcomes.map((o) => o.status)).toEqual(['applied']);
    const stored = await store.get(user.id);
    expect(stored).toMatchObject({ offboardedAt: minute(50), version: 8 });
    expect(Object.values(stored?.teams ?? {}).some((fact) => fact.member)).toBe(false);
    expect(recordItemBytes(stored as UserRecord)).toBeLessThanOrEqual(maxRecordItemBytes);
    expect(result.fit?.prunedTeams.length).toBeGreaterThan(0);
  });

  it('records a join on a near-limit record by pruning the oldest markers under a floor', async () => {
    // Prepare
    const store = await adapter.create({ initial: [nearLimitRecord()] });

    // Act
    const result = await store.apply(user, [joinEvent(user, 'sre', 1500)], new Date(minute(2000)));

    // Assess
    const stored = await store.get(user.id);
    expect(stored?.teams.sre?.member).toBe(true);
    expect(stored?.teams.platform?.member).toBe(true);
    expect(stored?.floorAt).toBe(result.fit?.floorAt);
    expect(stored?.floorAt).toEqual(expect.any(String));
    expect(recordItemBytes(stored as UserRecord)).toBeLessThanOrEqual(maxRecordItemBytes);
  });
});

describe('dynamo adapter: DynamoDB (dynalite) enforces the item limit', () => {
  it('refuses an item over 400 KB, which the store reports as a permanent STORE_ITEM_TOO_LARGE', async () => {
    // Prepare: a store told to let records grow to 1 MB, so only DynamoDB's own limit stops it
    const user = userFactory(12);
    const client = dynamoClient();
    const store = createDynamoStore({ client, tableName: await freshTable(client), itemBudget: 1024 * 1024 });
    const teams = Array.from({ length: 1000 }, (_, n) => `team-${String(n).padStart(400, '0')}`);
    const snapshot: ResolvedEvent = { id: 'snap', type: 'user.teams', occurredAt: at(1), user, teams };

    // Act
    const error = await store.apply(user, [snapshot]).then(
      () => undefined,
      (e: unknown) => e,
    );

    // Assess
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: ErrorCodes.storeItemTooLarge, retryable: false });
    expect((error as Error).message).toContain(`user ${user.id}`);
    expect((error as Error).message).toMatch(/\d+ bytes by our count/);
    expect(await store.get(user.id)).toBeUndefined();
  });
});

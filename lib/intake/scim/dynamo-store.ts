/**
 * The SCIM state in the membership table, beside `USER#…` state and audit items. Every key of
 * the intake starts with `SCIM#`, so its function's IAM role can be limited to those items
 * (`dynamodb:LeadingKeys`):
 *
 * | item | `pk` | `sk` |
 * |---|---|---|
 * | user | `SCIM#USERS` | `<scim id>` |
 * | userName index | `SCIM#USERNAME` | `<userName, lowercased>` |
 * | group | `SCIM#GROUPS` | `<scim id>` |
 * | displayName index | `SCIM#GROUPNAME` | `<displayName, lowercased>` |
 * | membership | `SCIM#GROUP#<group id>` | `MEMBER#<user id>` |
 * | a user's groups (index) | `SCIM#USER#<user id>` | `GROUP#<group id>` |
 *
 * Removed memberships stay as `member: false` for 30 days (TTL `expiresAtEpoch`), so that a late,
 * older request cannot undo a newer one. Every failure is a retryable `StoreError`.
 */
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { StoreError } from '../../errors.ts';
import {
  type MemberEdge,
  nameKey,
  type SaveResult,
  type ScimGroupRecord,
  type ScimStore,
  type ScimUserRecord,
} from './state.ts';

/** Every partition key the intake writes starts with this (the IAM condition relies on it). */
const scimKeyPrefix = 'SCIM#';

const keys = {
  users: 'SCIM#USERS',
  userNames: 'SCIM#USERNAME',
  groups: 'SCIM#GROUPS',
  groupNames: 'SCIM#GROUPNAME',
  group: (groupId: string) => `SCIM#GROUP#${groupId}`,
  member: (userId: string) => `MEMBER#${userId}`,
  user: (userId: string) => `SCIM#USER#${userId}`,
  userGroup: (groupId: string) => `GROUP#${groupId}`,
} as const;

/** How long a removal is kept to order late requests (DynamoDB TTL deletes it after). */
const removalRetentionSeconds = 30 * 24 * 60 * 60;

type Item = Record<string, unknown>;

interface DynamoScimStoreOptions {
  client: DynamoDBDocumentClient | DynamoDBClient;
  tableName: string;
}

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

const isConditionFailure = (error: unknown): boolean =>
  error instanceof ConditionalCheckFailedException ||
  (error as Error | undefined)?.name === 'ConditionalCheckFailedException';

const withoutKeys = <T>(item: Item): T => {
  const { pk: _pk, sk: _sk, expiresAtEpoch: _ttl, atMs: _atMs, ...rest } = item;
  return rest as T;
};

/**
 * @example const store = createDynamoScimStore({ client: new DynamoDBClient({}), tableName });
 */
const createDynamoScimStore = (options: DynamoScimStoreOptions): ScimStore => {
  const { tableName } = options;
  const client =
    options.client instanceof DynamoDBDocumentClient
      ? options.client
      : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });

  const call = async <T>(what: string, action: () => Promise<T>): Promise<T> => {
    try {
      return await action();
    } catch (error) {
      if (isConditionFailure(error)) throw error;
      throw new StoreError(`SCIM state: ${what} failed: ${describe(error)}`, { cause: error });
    }
  };

  /** A conditional write: false when the condition did not hold. */
  const conditional = async (what: string, action: () => Promise<unknown>): Promise<boolean> => {
    try {
      await call(what, action);
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  };

  const getItem = async (pk: string, sk: string): Promise<Item | undefined> =>
    (
      await call(`read ${pk}`, () =>
        client.send(new GetCommand({ TableName: tableName, Key: { pk, sk }, ConsistentRead: true })),
      )
    ).Item;

  const batchGet = async (keyList: ReadonlyArray<{ pk: string; sk: string }>): Promise<Item[]> => {
    const found: Item[] = [];
    for (let start = 0; start < keyList.length; start += 100) {
      let pending: Array<Record<string, unknown>> = keyList
        .slice(start, start + 100)
        .map((key) => ({ ...key }));
      for (let attempt = 1; pending.length > 0; attempt += 1) {
        const answer = await call('batch read', () =>
          client.send(
            new BatchGetCommand({ RequestItems: { [tableName]: { Keys: pending, ConsistentRead: true } } }),
          ),
        );
        found.push(...(answer.Responses?.[tableName] ?? []));
        pending = answer.UnprocessedKeys?.[tableName]?.Keys ?? [];
        if (pending.length > 0 && attempt >= 5)
          throw new StoreError(`SCIM state: ${pending.length} items stayed unprocessed in a batch read`);
        if (pending.length > 0) await new Promise((resolve) => setTimeout(resolve, 20 * 2 ** attempt));
      }
    }
    return found;
  };

  const query = async (
    pk: string,
    extra: { skPrefix?: string; filterMember?: boolean } = {},
  ): Promise<Item[]> => {
    const items: Item[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const answer = await call(`query ${pk}`, () =>
        client.send(
          new QueryCommand({
            TableName: tableName,
            KeyConditionExpression:
              extra.skPrefix === undefined ? '#pk = :pk' : '#pk = :pk AND begins_with(#sk, :prefix)',
            ...(extra.filterMember ? { FilterExpression: '#member = :true' } : {}),
            ExpressionAttributeNames: {
              '#pk': 'pk',
              ...(extra.skPrefix === undefined ? {} : { '#sk': 'sk' }),
              ...(extra.filterMember ? { '#member': 'member' } : {}),
            },
            ExpressionAttributeValues: {
              ':pk': pk,
              ...(extra.skPrefix === undefined ? {} : { ':prefix': extra.skPrefix }),
              ...(extra.filterMember ? { ':true': true } : {}),
            },
            ConsistentRead: true,
            ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
          }),
        ),
      );
      items.push(...(answer.Items ?? []));
      startKey = answer.LastEvaluatedKey;
    } while (startKey !== undefined);
    return items;
  };

  const put = (item: Item, condition?: { expression: string; names?: Item; values?: Item }) =>
    client.send(
      new PutCommand({
        TableName: tableName,
        Item: item,
        ...(condition === undefined
          ? {}
          : {
              ConditionExpression: condition.expression,
              ...(condition.names === undefined
                ? {}
                : { ExpressionAttributeNames: condition.names as Record<string, string> }),
              ...(condition.values === undefined ? {} : { ExpressionAttributeValues: condition.values }),
            }),
      }),
    );

  const remove = (pk: string, sk: string, condition?: { expression: string; names: Item; values: Item }) =>
    client.send(
      new DeleteCommand({
        TableName: tableName,
        Key: { pk, sk },
        ...(condition === undefined
          ? {}
          : {
              ConditionExpression: condition.expression,
              ExpressionAttributeNames: condition.names as Record<string, string>,
              ExpressionAttributeValues: condition.values,
            }),
      }),
    );

  /**
   * Takes a name index entry for `id`: free, already ours, or held by a record that no longer
   * lives (a crash between the index and the record writes). False when a live record holds it.
   */
  const claimName = async (
    indexPk: string,
    name: string,
    id: string,
    isLive: (holder: string) => Promise<boolean>,
  ): Promise<boolean> => {
    const sk = nameKey(name);
    const mine = await conditional(`claim ${indexPk}`, () =>
      put(
        { pk: indexPk, sk, id },
        {
          expression: 'attribute_not_exists(pk) OR #id = :id',
          names: { '#id': 'id' },
          values: { ':id': id },
        },
      ),
    );
    if (mine) return true;
    const holder = (await getItem(indexPk, sk))?.id;
    if (typeof holder !== 'string' || (await isLive(holder))) return false;
    return conditional(`take over ${indexPk}`, () =>
      put(
        { pk: indexPk, sk, id },
        { expression: '#id = :holder', names: { '#id': 'id' }, values: { ':holder': holder } },
      ),
    );
  };

  const releaseName = async (indexPk: string, name: string, id: string): Promise<void> => {
    await conditional(`release ${indexPk}`, () =>
      remove(indexPk, nameKey(name), {
        expression: '#id = :id',
        names: { '#id': 'id' },
        values: { ':id': id },
      }),
    );
  };

  const liveUser = async (id: string): Promise<boolean> => {
    const item = await getItem(keys.users, id);
    return item !== undefined && item.deleted !== true;
  };
  const liveGroup = async (id: string): Promise<boolean> => (await getItem(keys.groups, id)) !== undefined;

  const versioned = (expectedVersion: number) => ({
    expression: '#version = :version',
    names: { '#version': 'version' },
    values: { ':version': expectedVersion },
  });

  const toUser = (item: Item): ScimUserRecord => withoutKeys<ScimUserRecord>(item);
  const toGroup = (item: Item): ScimGroupRecord => withoutKeys<ScimGroupRecord>(item);
  const toEdge = (item: Item): MemberEdge => withoutKeys<MemberEdge>(item);

  const edgeItem = (edge: MemberEdge): Item => ({
    pk: keys.group(edge.groupId),
    sk: keys.member(edge.userId),
    ...edge,
    atMs: Date.parse(edge.at),
    ...(edge.member
      ? {}
      : { expiresAtEpoch: Math.floor(Date.parse(edge.at) / 1000) + removalRetentionSeconds }),
  });

  return {
    async getUser(id) {
      const item = await getItem(keys.users, id);
      return item === undefined ? undefined : toUser(item);
    },
    async getUsers(ids) {
      const items = await batchGet([...new Set(ids)].map((id) => ({ pk: keys.users, sk: id })));
      return new Map(items.map((item) => [String(item.sk), toUser(item)]));
    },
    async userIdByName(userName) {
      const holder = (await getItem(keys.userNames, nameKey(userName)))?.id;
      return typeof holder === 'string' && (await liveUser(holder)) ? holder : undefined;
    },
    async listUsers() {
      return (await query(keys.users)).map(toUser);
    },
    async createUser(record) {
      if (!(await claimName(keys.userNames, record.userName, record.id, liveUser))) return 'duplicate';
      const created = await conditional('create user', () =>
        put({ pk: keys.users, sk: record.id, ...record }, { expression: 'attribute_not_exists(pk)' }),
      );
      if (created) return 'ok';
      await releaseName(keys.userNames, record.userName, record.id);
      return 'duplicate';
    },
    async saveUser(record, expectedVersion, previousUserName): Promise<SaveResult> {
      const moved = nameKey(record.userName) !== nameKey(previousUserName);
      if (moved && !(await claimName(keys.userNames, record.userName, record.id, liveUser)))
        return 'duplicate';
      const saved = await conditional('save user', () =>
        put({ pk: keys.users, sk: record.id, ...record }, versioned(expectedVersion)),
      );
      if (!saved) {
        if (moved) await releaseName(keys.userNames, record.userName, record.id);
        return 'conflict';
      }
      if (moved) await releaseName(keys.userNames, previousUserName, record.id);
      return 'ok';
    },
    async removeUser(record) {
      await call('remove user', () => remove(keys.users, record.id));
      await releaseName(keys.userNames, record.userName, record.id);
    },
    async clearUserOutbox(id, version) {
      await conditional('clear user outbox', () =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { pk: keys.users, sk: id },
            UpdateExpression: 'REMOVE #outbox SET #version = :next',
            ConditionExpression: '#version = :version',
            ExpressionAttributeNames: { '#outbox': 'outbox', '#version': 'version' },
            ExpressionAttributeValues: { ':version': version, ':next': version + 1 },
          }),
        ),
      );
    },

    async getGroup(id) {
      const item = await getItem(keys.groups, id);
      return item === undefined ? undefined : toGroup(item);
    },
    async getGroups(ids) {
      const items = await batchGet([...new Set(ids)].map((id) => ({ pk: keys.groups, sk: id })));
      return new Map(items.map((item) => [String(item.sk), toGroup(item)]));
    },
    async groupIdByName(displayName) {
      const holder = (await getItem(keys.groupNames, nameKey(displayName)))?.id;
      return typeof holder === 'string' && (await liveGroup(holder)) ? holder : undefined;
    },
    async listGroups() {
      return (await query(keys.groups)).map(toGroup);
    },
    async createGroup(record) {
      if (!(await claimName(keys.groupNames, record.displayName, record.id, liveGroup))) return 'duplicate';
      const created = await conditional('create group', () =>
        put({ pk: keys.groups, sk: record.id, ...record }, { expression: 'attribute_not_exists(pk)' }),
      );
      if (created) return 'ok';
      await releaseName(keys.groupNames, record.displayName, record.id);
      return 'duplicate';
    },
    async saveGroup(record, expectedVersion, previousName): Promise<SaveResult> {
      const moved = nameKey(record.displayName) !== nameKey(previousName);
      if (moved && !(await claimName(keys.groupNames, record.displayName, record.id, liveGroup)))
        return 'duplicate';
      const saved = await conditional('save group', () =>
        put({ pk: keys.groups, sk: record.id, ...record }, versioned(expectedVersion)),
      );
      if (!saved) {
        if (moved) await releaseName(keys.groupNames, record.displayName, record.id);
        return 'conflict';
      }
      if (moved) await releaseName(keys.groupNames, previousName, record.id);
      return 'ok';
    },
    async removeGroup(record) {
      await call('remove group', () => remove(keys.groups, record.id));
      await releaseName(keys.groupNames, record.displayName, record.id);
    },

    async getEdges(groupId, userIds) {
      const items = await batchGet(
        [...new Set(userIds)].map((userId) => ({ pk: keys.group(groupId), sk: keys.member(userId) })),
      );
      return new Map(items.map((item) => [String(item.userId), toEdge(item)]));
    },
    async listEdges(groupId) {
      return (await query(keys.group(groupId), { skPrefix: 'MEMBER#' })).map(toEdge);
    },
    async transitionEdge(edge) {
      return conditional('membership transition', () =>
        put(edgeItem(edge), {
          expression: 'attribute_not_exists(pk) OR (#member <> :member AND #atMs < :atMs)',
          names: { '#member': 'member', '#atMs': 'atMs' },
          values: { ':member': edge.member, ':atMs': Date.parse(edge.at) },
        }),
      );
    },
    async clearEdgeOutbox(groupId, userId, at) {
      await conditional('clear membership outbox', () =>
        client.send(
          new UpdateCommand({
            TableName: tableName,
            Key: { pk: keys.group(groupId), sk: keys.member(userId) },
            UpdateExpression: 'REMOVE #outbox',
            ConditionExpression: '#at = :at',
            ExpressionAttributeNames: { '#outbox': 'outbox', '#at': 'at' },
            ExpressionAttributeValues: { ':at': at },
          }),
        ),
      );
    },
    async removeEdge(groupId, userId) {
      await call('remove membership', () => remove(keys.group(groupId), keys.member(userId)));
    },
    async userGroupIds(userId) {
      return (await query(keys.user(userId), { skPrefix: 'GROUP#', filterMember: true })).map((item) =>
        String(item.groupId),
      );
    },
    async setUserGroup(userId, groupId, member, at) {
      await conditional('index a membership', () =>
        put(
          {
            pk: keys.user(userId),
            sk: keys.userGroup(groupId),
            groupId,
            member,
            at,
            atMs: Date.parse(at),
            ...(member
              ? {}
              : { expiresAtEpoch: Math.floor(Date.parse(at) / 1000) + removalRetentionSeconds }),
          },
          {
            expression: 'attribute_not_exists(pk) OR #atMs <= :atMs',
            names: { '#atMs': 'atMs' },
            values: { ':atMs': Date.parse(at) },
          },
        ),
      );
    },
    async removeUserGroup(userId, groupId) {
      await call('remove a membership index', () => remove(keys.user(userId), keys.userGroup(groupId)));
    },
  };
};

export type { DynamoScimStoreOptions };
export { createDynamoScimStore, scimKeyPrefix };

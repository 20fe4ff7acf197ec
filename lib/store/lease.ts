/**
 * Named leases in the membership table: one item per lease (`pk = LEASE#<name>`, `sk = LEASE`)
 * with its owner and expiry, beside the users' items (every scan of users filters on
 * `sk = STATE`, so a lease is never read as a user).
 *
 * - acquire: a conditional update that succeeds when no one holds it (no item, or an item only
 *   announcements created), the lease has expired, or it is already this owner's (an SDK retry of
 *   a write that did land must not lock its own writer out); an update, not a put, so that the
 *   users announced on the item stay;
 * - release: a conditional update, on the owner, that expires the lease now. An update rather
 *   than a delete: the functions' role needs no `dynamodb:DeleteItem` on the table that holds
 *   every user's record, and the item left behind is a few bytes.
 * - announce / announced / forget: a string set `waiting` on the same item, the users that batches
 *   waiting for the lease recorded (the holder converges them too), capped at `maxAnnouncedUsers`
 *   (5,000 ids of 32 characters are some 170 KB of the 400 KB item).
 * Expiry is compared on the callers' clocks (Lambda's are NTP-synchronised; the holder's expiry
 * carries a margin for the difference).
 */
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { callAws } from '../aws.ts';
import type { CallOptions, LeasePort } from '../domain.ts';
import { ErrorCodes, StoreError } from '../errors.ts';
import { storeFailure } from './dynamo-errors.ts';

const leaseSortKey = 'LEASE';

/** Users the announced list holds at most: a hint that must never make the item too large. */
const maxAnnouncedUsers = 5_000;

/** @example leasePartitionKey('converge:access-changes') // 'LEASE#converge:access-changes' */
const leasePartitionKey = (name: string): string => `LEASE#${name}`;

const conditionFailed = (error: unknown): boolean =>
  error instanceof ConditionalCheckFailedException ||
  (error as Error | undefined)?.name === 'ConditionalCheckFailedException';

/**
 * @example
 * const lease = createDynamoLease({ client, tableName });
 * if (await lease.tryAcquire('converge:access-changes', owner, deadline + 3_000, { deadline })) …
 */
const createDynamoLease = (options: {
  client: DynamoDBDocumentClient | DynamoDBClient;
  tableName: string;
  /** The caller's clock (tests move it). */
  now?: () => number;
}): LeasePort => {
  const { tableName, now = Date.now } = options;
  const client =
    options.client instanceof DynamoDBDocumentClient
      ? options.client
      : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });
  const key = (name: string) => ({ pk: leasePartitionKey(name), sk: leaseSortKey });

  return {
    async tryAcquire(name, owner, expiresAt, callOptions?: CallOptions) {
      const at = now();
      try {
        await callAws('DynamoDB UpdateItem (lease)', callOptions, (abortSignal) =>
          client.send(
            new UpdateCommand({
              TableName: tableName,
              Key: key(name),
              UpdateExpression: 'SET #owner = :owner, expiresAt = :expiresAt, acquiredAt = :at',
              // Not `attribute_not_exists(pk)`: an announcement may have created the item, with no holder.
              ConditionExpression: 'attribute_not_exists(expiresAt) OR expiresAt <= :now OR #owner = :owner',
              ExpressionAttributeNames: { '#owner': 'owner' },
              ExpressionAttributeValues: {
                ':owner': owner,
                ':expiresAt': expiresAt,
                ':at': new Date(at).toISOString(),
                ':now': at,
              },
            }),
            { abortSignal },
          ),
        );
        return true;
      } catch (error) {
        if (conditionFailed(error)) return false;
        throw storeFailure(error, { what: `lease ${name} acquisition`, tableName });
      }
    },
    async release(name, owner, callOptions?: CallOptions) {
      try {
        await callAws('DynamoDB UpdateItem (lease release)', callOptions, (abortSignal) =>
          client.send(
            new UpdateCommand({
              TableName: tableName,
              Key: key(name),
              UpdateExpression: 'SET expiresAt = :zero REMOVE acquiredAt',
              ConditionExpression: '#owner = :owner',
              ExpressionAttributeNames: { '#owner': 'owner' },
              ExpressionAttributeValues: { ':zero': 0, ':owner': owner },
            }),
            { abortSignal },
          ),
        );
        return true;
      } catch (error) {
        if (conditionFailed(error)) return false;
        throw storeFailure(error, { what: `lease ${name} release`, tableName });
      }
    },
    async announce(name, userIds, callOptions?: CallOptions) {
      if (userIds.length === 0) return;
      try {
        await callAws('DynamoDB UpdateItem (lease announce)', callOptions, (abortSignal) =>
          client.send(
            new UpdateCommand({
              TableName: tableName,
              Key: key(name),
              UpdateExpression: 'ADD waiting :ids',
              ConditionExpression: 'attribute_not_exists(waiting) OR size(waiting) < :max',
              ExpressionAttributeValues: { ':ids': new Set(userIds), ':max': maxAnnouncedUsers },
            }),
            { abortSignal },
          ),
        );
      } catch (error) {
        // Full: the holder will not hear of these users; their own batch converges them.
        if (conditionFailed(error)) return;
        throw storeFailure(error, { what: `lease ${name} announcement`, tableName });
      }
    },
    async announced(name, callOptions?: CallOptions) {
      try {
        const answer = await callAws('DynamoDB GetItem (lease)', callOptions, (abortSignal) =>
          client.send(new GetCommand({ TableName: tableName, Key: key(name), ConsistentRead: true }), {
            abortSignal,
          }),
        );
        const waiting = answer.Item?.waiting;
        return waiting instanceof Set ? [...waiting].map(String).sort() : [];
      } catch (error) {
        throw storeFailure(error, { what: `lease ${name} read`, tableName });
      }
    },
    async forget(name, userIds, callOptions?: CallOptions) {
      if (userIds.length === 0) return;
      try {
        await callAws('DynamoDB UpdateItem (lease forget)', callOptions, (abortSignal) =>
          client.send(
            new UpdateCommand({
              TableName: tableName,
              Key: key(name),
              UpdateExpression: 'DELETE waiting :ids',
              ExpressionAttributeValues: { ':ids': new Set(userIds) },
            }),
            { abortSignal },
          ),
        );
      } catch (error) {
        throw storeFailure(error, { what: `lease ${name} forget`, tableName });
      }
    },
  };
};

/** Memory answers at once; only a deadline already passed, or an aborted caller, can stop it. */
const checkDeadline = (operation: string, options: CallOptions | undefined): void => {
  if (options?.signal?.aborted || (options?.deadline !== undefined && Date.now() >= options.deadline))
    throw new StoreError(`lease ${operation} was not started: the deadline had passed`, {
      code: ErrorCodes.deadline,
    });
};

/**
 * The same contract in memory, for tests, the CLI and the bench's in-process instances (which
 * share one, as the deployed functions share the table).
 *
 * @example const lease = createMemoryLease(); await lease.tryAcquire('x', 'me', Date.now() + 1_000);
 */
const createMemoryLease = (options: { now?: () => number } = {}): LeasePort => {
  const { now = Date.now } = options;
  const held = new Map<string, { owner: string; expiresAt: number }>();
  const waiting = new Map<string, Set<string>>();
  const waitingOf = (name: string): Set<string> => {
    const found = waiting.get(name) ?? new Set<string>();
    waiting.set(name, found);
    return found;
  };
  return {
    async tryAcquire(name, owner, expiresAt, callOptions) {
      checkDeadline('acquisition', callOptions);
      const current = held.get(name);
      if (current !== undefined && current.owner !== owner && current.expiresAt > now()) return false;
      held.set(name, { owner, expiresAt });
      return true;
    },
    async release(name, owner, callOptions) {
      checkDeadline('release', callOptions);
      const current = held.get(name);
      if (current === undefined || current.owner !== owner) return false;
      held.set(name, { owner, expiresAt: 0 });
      return true;
    },
    async announce(name, userIds, callOptions) {
      checkDeadline('announcement', callOptions);
      const set = waitingOf(name);
      if (set.size >= maxAnnouncedUsers) return;
      for (const id of userIds) set.add(id);
    },
    async announced(name, callOptions) {
      checkDeadline('read', callOptions);
      return [...waitingOf(name)].sort();
    },
    async forget(name, userIds, callOptions) {
      checkDeadline('forget', callOptions);
      const set = waitingOf(name);
      for (const id of userIds) set.delete(id);
    },
  };
};

export { createDynamoLease, createMemoryLease, leasePartitionKey, leaseSortKey, maxAnnouncedUsers };

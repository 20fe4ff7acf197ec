/**
 * Named leases in the membership table: one item per lease (`pk = LEASE#<name>`, `sk = LEASE`)
 * with its owner and expiry, beside the users' items (every scan of users filters on
 * `sk = STATE`, so a lease is never read as a user).
 *
 * - acquire: a conditional put that succeeds when no item exists, the item has expired, or it is
 *   already this owner's (an SDK retry of a put that did land must not lock its own writer out);
 * - release: a conditional update, on the owner, that expires the lease now. An update rather
 *   than a delete: the functions' role needs no `dynamodb:DeleteItem` on the table that holds
 *   every user's record, and the item left behind is a few bytes.
 * Expiry is compared on the callers' clocks (Lambda's are NTP-synchronised; the holder's expiry
 * carries a margin for the difference).
 */
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { callAws } from '../aws.ts';
import type { CallOptions, LeasePort } from '../domain.ts';
import { ErrorCodes, StoreError } from '../errors.ts';
import { storeFailure } from './dynamo-errors.ts';

const leaseSortKey = 'LEASE';

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
        await callAws('DynamoDB PutItem (lease)', callOptions, (abortSignal) =>
          client.send(
            new PutCommand({
              TableName: tableName,
              Item: { ...key(name), owner, expiresAt, acquiredAt: new Date(at).toISOString() },
              ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :now OR #owner = :owner',
              ExpressionAttributeNames: { '#owner': 'owner' },
              ExpressionAttributeValues: { ':now': at, ':owner': owner },
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
  };
};

export { createDynamoLease, createMemoryLease, leasePartitionKey, leaseSortKey };

/**
 * The membership store on DynamoDB. One item per user (see table.ts). `apply` and `applyDue` are
 * a read-modify-write under optimistic locking: read strongly consistent, reduce, write on the
 * condition that the version is still the one read; on a lost race read again and re-apply.
 * Pending (future-effective) events live inside the item (`pending`, a list of maps), under the
 * same lock. Any other failure is a retryable `StoreError`: never act on a record that could not
 * be read.
 */
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { eventSchema } from '../core/events.ts';
import type { ApplyResult, IamUser, MembershipStorePort, ResolvedEvent, UserRecord } from '../domain.ts';
import { ErrorCodes, StoreError } from '../errors.ts';
import { type Reduced, reduceEvents, settleStored } from './reduce.ts';
import { stateSortKey, userPartitionKey } from './table.ts';

interface DynamoStoreOptions {
  client: DynamoDBDocumentClient | DynamoDBClient;
  tableName: string;
  /** Attempts of one `apply` under contention before STORE_CONFLICT (default 8). */
  maxAttempts?: number;
  /** Clock for `updatedAt`, and `apply`'s `now` when the caller gives none. */
  now?: () => Date;
  /** Items per Scan page of `list()` (DynamoDB's 1 MB page when unset). */
  scanPageSize?: number;
}

// Loose: attributes a later version adds to a team fact survive a rewrite by this one.
const teamFactSchema = z.looseObject({
  member: z.boolean(),
  at: z.string(),
  eventId: z.string(),
  expiresAt: z.string().optional(),
});

// A pending event was validated when it arrived; it must still be one, with its user resolved.
const pendingEventSchema = eventSchema.refine(
  (event) => event.user.id !== undefined && event.user.name !== undefined,
  { error: 'a pending event must carry the resolved user id and name' },
);

const itemSchema = z.object({
  userId: z.string(),
  userName: z.string(),
  teams: z.record(z.string(), teamFactSchema),
  offboardedAt: z.string().optional(),
  snapshotAt: z.string().optional(),
  pending: z.array(pendingEventSchema).optional(),
  version: z.number().int().nonnegative(),
  updatedAt: z.string().optional(),
});

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

const toRecord = (item: Record<string, unknown>): UserRecord => {
  const parsed = itemSchema.safeParse(item);
  if (!parsed.success)
    throw new StoreError(
      `membership item ${String(item.pk)} is malformed: ${z.prettifyError(parsed.error).slice(0, 500)}`,
    );
  const { offboardedAt, snapshotAt, updatedAt, pending, ...rest } = parsed.data;
  return {
    ...rest,
    ...(offboardedAt === undefined ? {} : { offboardedAt }),
    ...(snapshotAt === undefined ? {} : { snapshotAt }),
    // The refinement checked that both halves of each user are there.
    ...(pending === undefined || pending.length === 0 ? {} : { pending: pending as ResolvedEvent[] }),
    ...(updatedAt === undefined ? {} : { updatedAt }),
  };
};

const toItem = (record: UserRecord): Record<string, unknown> => ({
  pk: userPartitionKey(record.userId),
  sk: stateSortKey,
  userId: record.userId,
  userName: record.userName,
  teams: record.teams,
  version: record.version,
  ...(record.offboardedAt === undefined ? {} : { offboardedAt: record.offboardedAt }),
  ...(record.snapshotAt === undefined ? {} : { snapshotAt: record.snapshotAt }),
  ...(record.pending === undefined || record.pending.length === 0 ? {} : { pending: record.pending }),
  ...(record.updatedAt === undefined ? {} : { updatedAt: record.updatedAt }),
});

/** Full jitter on a doubling cap: racing writers spread out instead of colliding again. */
const backoff = (attempt: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(200, 10 * 2 ** attempt)));

/**
 * @example
 * const store = createDynamoStore({ client: new DynamoDBClient({}), tableName: config.tableName });
 * const { before, after, outcomes, written } = await store.apply(user, events, new Date());
 * await store.applyDue(user.id, new Date()); // pending events now due, expired memberships
 */
const createDynamoStore = (options: DynamoStoreOptions): MembershipStorePort => {
  const { tableName, maxAttempts = 8, now = () => new Date(), scanPageSize } = options;
  const client =
    options.client instanceof DynamoDBDocumentClient
      ? options.client
      : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });

  const get = async (userId: string): Promise<UserRecord | undefined> => {
    let item: Record<string, unknown> | undefined;
    try {
      const answer = await client.send(
        new GetCommand({
          TableName: tableName,
          Key: { pk: userPartitionKey(userId), sk: stateSortKey },
          ConsistentRead: true,
        }),
      );
      item = answer.Item;
    } catch (error) {
      throw new StoreError(`membership store read failed for user ${userId}: ${describe(error)}`, {
        cause: error,
      });
    }
    return item === undefined ? undefined : toRecord(item);
  };

  /** Writes `record`; false when another writer got there first. */
  const put = async (record: UserRecord, readVersion: number | undefined): Promise<boolean> => {
    try {
      await client.send(
        new PutCommand({
          TableName: tableName,
          Item: toItem(record),
          ...(readVersion === undefined
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : {
                ConditionExpression: '#version = :version',
                ExpressionAttributeNames: { '#version': 'version' },
                ExpressionAttributeValues: { ':version': readVersion },
              }),
        }),
      );
      return true;
    } catch (error) {
      if (
        error instanceof ConditionalCheckFailedException ||
        (error as Error)?.name === 'ConditionalCheckFailedException'
      )
        return false;
      throw new StoreError(`membership store write failed for user ${record.userId}: ${describe(error)}`, {
        cause: error,
      });
    }
  };

  /**
   * Read, reduce, conditional write; again on a lost race. `reduce` answers `undefined` when
   * there is nothing to do for the record read (applyDue on a user never stored).
   */
  const update = async (
    userId: string,
    reduce: (
      before: UserRecord | undefined,
    ) => { reduced: Reduced; outcomes: Reduced['outcomes'] } | undefined,
  ): Promise<ApplyResult | undefined> => {
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const before = await get(userId);
      const step = reduce(before);
      if (step === undefined) return undefined;
      const { after, settled, changed } = step.reduced;
      const { outcomes } = step;
      if (!changed) return { before, after, outcomes, settled, written: false };
      const stored: UserRecord = {
        ...after,
        version: (before?.version ?? 0) + 1,
        updatedAt: now().toISOString(),
      };
      if (await put(stored, before?.version))
        return { before, after: stored, outcomes, settled, written: true };
      if (attempt < maxAttempts) await backoff(attempt);
    }
    throw new StoreError(
      `membership of user ${userId} changed under ${maxAttempts} attempts in a row; giving up for now`,
      { code: ErrorCodes.conflict },
    );
  };

  const apply = async (
    user: IamUser,
    events: readonly ResolvedEvent[],
    at: Date = now(),
  ): Promise<ApplyResult> =>
    (await update(user.id, (before) => {
      const reduced = reduceEvents(before, user, events, at);
      return { reduced, outcomes: reduced.outcomes };
    })) as ApplyResult;

  const applyDue = (userId: string, at: Date): Promise<ApplyResult | undefined> =>
    update(userId, (before) => {
      if (before === undefined) return undefined;
      const reduced = settleStored(before, at);
      return { reduced, outcomes: reduced.settled };
    });

  async function* list(): AsyncGenerator<UserRecord> {
    let startKey: Record<string, unknown> | undefined;
    do {
      let page: { Items?: Record<string, unknown>[]; LastEvaluatedKey?: Record<string, unknown> };
      try {
        page = await client.send(
          new ScanCommand({
            TableName: tableName,
            // Other item types (audit) share the table: only STATE items are users.
            FilterExpression: '#sk = :state',
            ExpressionAttributeNames: { '#sk': 'sk' },
            ExpressionAttributeValues: { ':state': stateSortKey },
            ConsistentRead: true,
            ...(scanPageSize === undefined ? {} : { Limit: scanPageSize }),
            ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
          }),
        );
      } catch (error) {
        throw new StoreError(`membership store scan failed: ${describe(error)}`, { cause: error });
      }
      for (const item of page.Items ?? []) yield toRecord(item);
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
  }

  return { get, apply, applyDue, list };
};

export type { DynamoStoreOptions };
export { createDynamoStore };

/**
 * The membership store on DynamoDB. One item per user (see table.ts and item.ts). `apply` and
 * `applyDue` are a read-modify-write under optimistic locking: read strongly consistent, reduce,
 * fit the record into one item (bounds.ts), write on the condition that the version is still the
 * one read; on a lost race read again and re-apply. Pending (future-effective) events live inside
 * the item (`pending`, a list of maps), under the same lock.
 *
 * Every call is bounded by the caller's deadline (`CallOptions`), and so is the whole
 * read-modify-write loop: a DynamoDB that accepts and never answers costs the deadline, not the
 * invocation. Failures are `StoreError`s (dynamo-errors.ts): retryable unless DynamoDB refused
 * the request as invalid; never act on a record that could not be read.
 */
import { ConditionalCheckFailedException, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { callAws } from '../aws.ts';
import type {
  ApplyResult,
  CallOptions,
  IamUser,
  MembershipStorePort,
  ResolvedEvent,
  UserRecord,
} from '../domain.ts';
import { ErrorCodes, StoreError } from '../errors.ts';
import type { Log } from '../observability.ts';
import { recordItemBytes, reportFit } from './bounds.ts';
import { storeFailure } from './dynamo-errors.ts';
import { toItem, toRecord } from './item.ts';
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
  /** Where a record trimmed to fit one item is reported (warn for losses). */
  log?: Pick<Log, 'info' | 'warn'>;
  /** Item budget in bytes (bounds.ts; tests pass a small one). */
  itemBudget?: number;
}

/** Full jitter on a doubling cap: racing writers spread out instead of colliding again. */
const backoffMs = (attempt: number): number => Math.random() * Math.min(200, 10 * 2 ** attempt);

/** Waits `ms`, but never past the deadline (a write that could not start in time is not tried). */
const pause = (ms: number, options: CallOptions | undefined): Promise<void> => {
  const left = options?.deadline === undefined ? ms : Math.min(ms, options.deadline - Date.now());
  return left <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, left));
};

/**
 * @example
 * const store = createDynamoStore({ client: new DynamoDBClient(awsClientConfig(10_000)), tableName });
 * const { before, after, outcomes, written } = await store.apply(user, events, new Date(), { deadline });
 * await store.applyDue(user.id, new Date(), { deadline }); // pending events now due, expired memberships
 */
const createDynamoStore = (options: DynamoStoreOptions): MembershipStorePort => {
  const { tableName, maxAttempts = 8, now = () => new Date(), scanPageSize, log, itemBudget } = options;
  const client =
    options.client instanceof DynamoDBDocumentClient
      ? options.client
      : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });
  const reduceOptions = itemBudget === undefined ? {} : { budget: itemBudget };

  const get = async (userId: string, callOptions?: CallOptions): Promise<UserRecord | undefined> => {
    let item: Record<string, unknown> | undefined;
    try {
      const answer = await callAws('DynamoDB GetItem', callOptions, (abortSignal) =>
        client.send(
          new GetCommand({
            TableName: tableName,
            Key: { pk: userPartitionKey(userId), sk: stateSortKey },
            ConsistentRead: true,
          }),
          { abortSignal },
        ),
      );
      item = answer.Item;
    } catch (error) {
      throw storeFailure(error, { what: `membership store read for user ${userId}`, tableName });
    }
    return item === undefined ? undefined : toRecord(item);
  };

  /** Writes `record`; false when another writer got there first. */
  const put = async (
    record: UserRecord,
    readVersion: number | undefined,
    callOptions: CallOptions | undefined,
  ): Promise<boolean> => {
    try {
      await callAws('DynamoDB PutItem', callOptions, (abortSignal) =>
        client.send(
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
          { abortSignal },
        ),
      );
      return true;
    } catch (error) {
      if (
        error instanceof ConditionalCheckFailedException ||
        (error as Error)?.name === 'ConditionalCheckFailedException'
      )
        return false;
      throw storeFailure(error, {
        what: `membership store write for user ${record.userId}`,
        tableName,
        itemBytes: recordItemBytes(record),
      });
    }
  };

  /**
   * Read, reduce, conditional write; again on a lost race, while the deadline allows. `reduce`
   * answers `undefined` when there is nothing to do for the record read (applyDue on a user
   * never stored).
   */
  const update = async (
    userId: string,
    reduce: (
      before: UserRecord | undefined,
    ) => { reduced: Reduced; outcomes: Reduced['outcomes'] } | undefined,
    callOptions: CallOptions | undefined,
  ): Promise<ApplyResult | undefined> => {
    for (let attempt = 1; attempt <= maxAttempts; attempt++) {
      const before = await get(userId, callOptions);
      const step = reduce(before);
      if (step === undefined) return undefined;
      const { after, settled, changed, fit } = step.reduced;
      const { outcomes } = step;
      if (!changed) return { before, after, outcomes, settled, written: false };
      const stored: UserRecord = {
        ...after,
        version: (before?.version ?? 0) + 1,
        updatedAt: now().toISOString(),
      };
      if (await put(stored, before?.version, callOptions)) {
        reportFit(log, userId, fit);
        return {
          before,
          after: stored,
          outcomes,
          settled,
          written: true,
          ...(fit === undefined ? {} : { fit }),
        };
      }
      if (attempt < maxAttempts) await pause(backoffMs(attempt), callOptions);
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
    callOptions?: CallOptions,
  ): Promise<ApplyResult> =>
    (await update(
      user.id,
      (before) => {
        const reduced = reduceEvents(before, user, events, at, reduceOptions);
        return { reduced, outcomes: reduced.outcomes };
      },
      callOptions,
    )) as ApplyResult;

  const applyDue = (userId: string, at: Date, callOptions?: CallOptions): Promise<ApplyResult | undefined> =>
    update(
      userId,
      (before) => {
        if (before === undefined) return undefined;
        const reduced = settleStored(before, at, reduceOptions);
        return { reduced, outcomes: reduced.settled };
      },
      callOptions,
    );

  async function* list(callOptions?: CallOptions): AsyncGenerator<UserRecord> {
    let startKey: Record<string, unknown> | undefined;
    do {
      let page: { Items?: Record<string, unknown>[]; LastEvaluatedKey?: Record<string, unknown> };
      try {
        page = await callAws('DynamoDB Scan', callOptions, (abortSignal) =>
          client.send(
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
            { abortSignal },
          ),
        );
      } catch (error) {
        throw storeFailure(error, { what: 'membership store scan', tableName });
      }
      for (const item of page.Items ?? []) yield toRecord(item);
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined);
  }

  return { get, apply, applyDue, list };
};

export type { DynamoStoreOptions };
export { createDynamoStore };

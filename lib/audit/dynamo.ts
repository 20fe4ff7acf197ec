/**
 * The audit trail in the membership table (see items.ts for the keys). Writes go in
 * BatchWriteItem calls of 25; what DynamoDB leaves unprocessed (throttling) is sent again with
 * back-off a few times, then the write fails as a retryable StoreError naming how many records
 * were not kept: the caller logs them, so nothing is silently lost. Every call, and the back-off,
 * is bounded by the caller's deadline (`CallOptions`); DynamoDB failures are classified as for
 * the membership store (lib/store/dynamo-errors.ts).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  DynamoDBDocumentClient,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { callAws } from '../aws.ts';
import type { CallOptions } from '../domain.ts';
import { ErrorCodes, StoreError } from '../errors.ts';
import { storeFailure } from '../store/dynamo-errors.ts';
import { userPartitionKey } from '../store/table.ts';
import {
  auditSortKeyPrefix,
  defaultRetentionDays,
  fromAuditItem,
  nameIndexPartitionKey,
  targetIndexPartitionKey,
  toAuditItem,
  toNameIndexItem,
  toTargetIndexItem,
} from './items.ts';
import { type AuditQueryOptions, type AuditStorePort, durableRecords } from './store.ts';

interface DynamoAuditStoreOptions {
  client: DynamoDBDocumentClient | DynamoDBClient;
  tableName: string;
  /** Days until DynamoDB TTL may delete a record (attribute `expiresAtEpoch`); default 400. */
  retentionDays?: number;
  /** BatchWriteItem calls per chunk before giving up on unprocessed items; default 4. */
  maxAttempts?: number;
  /** Back-off before re-sending unprocessed items (tests pass a fast one). */
  sleep?: (ms: number) => Promise<void>;
}

/** DynamoDB's BatchWriteItem limit. */
const batchSize = 25;

type Item = Record<string, unknown>;

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** BatchWriteItem refuses two requests for one key in a call: keep the last of each key. */
const uniqueByKey = (items: readonly Item[]): Item[] => {
  const byKey = new Map<string, Item>();
  for (const item of items) byKey.set(`${String(item.pk)}\u0000${String(item.sk)}`, item);
  return [...byKey.values()];
};

/**
 * @example
 * const audit = createDynamoAuditStore({ client: new DynamoDBClient({}), tableName: config.tableName });
 * await audit.write(report.changes);
 */
const createDynamoAuditStore = (options: DynamoAuditStoreOptions): AuditStorePort => {
  const { tableName, retentionDays = defaultRetentionDays, maxAttempts = 4, sleep = defaultSleep } = options;
  const client =
    options.client instanceof DynamoDBDocumentClient
      ? options.client
      : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });

  const writeChunk = async (chunk: readonly Item[], callOptions: CallOptions | undefined): Promise<void> => {
    let pending = chunk.map((Item) => ({ PutRequest: { Item } }));
    for (let attempt = 1; ; attempt += 1) {
      let answer: BatchWriteCommandOutput;
      try {
        answer = await callAws('DynamoDB BatchWriteItem', callOptions, (abortSignal) =>
          client.send(new BatchWriteCommand({ RequestItems: { [tableName]: pending } }), { abortSignal }),
        );
      } catch (error) {
        throw storeFailure(error, { what: `audit write (${pending.length} items)`, tableName });
      }
      const left = answer.UnprocessedItems?.[tableName] ?? [];
      if (left.length === 0) return;
      if (attempt >= maxAttempts)
        throw new StoreError(
          `audit write left ${left.length} of ${chunk.length} items unprocessed after ${maxAttempts} attempts`,
        );
      pending = left as typeof pending;
      const wait = Math.min(1_000, 50 * 2 ** (attempt - 1));
      if (callOptions?.deadline !== undefined && Date.now() + wait >= callOptions.deadline)
        throw new StoreError(
          `audit write left ${left.length} of ${chunk.length} items unprocessed when the deadline came`,
          { code: ErrorCodes.deadline },
        );
      await sleep(wait);
    }
  };

  const queryAll = async (
    pk: string,
    prefix: string,
    newestFirst: boolean,
    limit: number | undefined,
    callOptions: CallOptions | undefined,
  ): Promise<Item[]> => {
    const items: Item[] = [];
    let startKey: Item | undefined;
    do {
      let page: { Items?: Item[]; LastEvaluatedKey?: Item };
      try {
        page = await callAws('DynamoDB Query', callOptions, (abortSignal) =>
          client.send(
            new QueryCommand({
              TableName: tableName,
              KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
              ExpressionAttributeNames: { '#pk': 'pk', '#sk': 'sk' },
              ExpressionAttributeValues: { ':pk': pk, ':prefix': prefix },
              ScanIndexForward: !newestFirst,
              ...(limit === undefined ? {} : { Limit: limit - items.length }),
              ...(startKey === undefined ? {} : { ExclusiveStartKey: startKey }),
            }),
            { abortSignal },
          ),
        );
      } catch (error) {
        throw storeFailure(error, { what: `audit read for ${pk}`, tableName });
      }
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey !== undefined && (limit === undefined || items.length < limit));
    return items;
  };

  return {
    async write(records, callOptions) {
      const items = uniqueByKey(
        durableRecords(records).flatMap((record) => [
          toAuditItem(record, retentionDays),
          toTargetIndexItem(record, retentionDays),
          toNameIndexItem(record, retentionDays),
        ]),
      );
      for (let start = 0; start < items.length; start += batchSize)
        await writeChunk(items.slice(start, start + batchSize), callOptions);
    },
    async listByUserId(userId: string, queryOptions: AuditQueryOptions = {}) {
      // The STATE item shares the partition; the prefix keeps to audit items. The name-index
      // items live under NAME# partitions, never here.
      const items = await queryAll(
        userPartitionKey(userId),
        auditSortKeyPrefix,
        true,
        queryOptions.limit,
        queryOptions,
      );
      return items.map(fromAuditItem);
    },
    async listByTarget(target, queryOptions: AuditQueryOptions = {}) {
      const items = await queryAll(
        targetIndexPartitionKey(target),
        auditSortKeyPrefix,
        true,
        queryOptions.limit,
        queryOptions,
      );
      return items.map(fromAuditItem);
    },
    async userIdsByName(userName: string, callOptions?: CallOptions) {
      const items = await queryAll(
        nameIndexPartitionKey(userName),
        auditSortKeyPrefix,
        false,
        undefined,
        callOptions,
      );
      return items.map((item) => String(item.userId)).sort();
    },
  };
};

export type { DynamoAuditStoreOptions };
export { createDynamoAuditStore };

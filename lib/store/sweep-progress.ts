/**
 * The offboarding sweep's progress in the membership table: one item per user
 * (`pk = USER#<userId>`, `sk = SWEEP`), beside the user's state. It is small (a cursor per managed
 * namespace) and written after each page of repositories, so it never grows with the namespace.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { callAws } from '../aws.ts';
import { StoreError, SyncError } from '../errors.ts';
import type { SweepProgress, SweepProgressPort } from '../offboarding/progress.ts';
import * as z from '../zod.ts';
import { userPartitionKey } from './table.ts';

const sweepSortKey = 'SWEEP';

const progressSchema = z.object({
  userId: z.string(),
  offboardedAt: z.string(),
  policyDone: z.boolean(),
  namespaces: z.record(z.string(), z.object({ after: z.optional(z.string()), done: z.boolean() })),
  checked: z.int().check(z.nonnegative()),
  startedAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.optional(z.string()),
});

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/** A deadline error passes as it is; anything else says which user's progress failed. */
const storeError = (what: string, error: unknown): SyncError =>
  error instanceof SyncError ? error : new StoreError(`${what}: ${describe(error)}`, { cause: error });

/**
 * @example const progress = createDynamoSweepProgress({ client, tableName });
 */
const createDynamoSweepProgress = (options: {
  client: DynamoDBDocumentClient | DynamoDBClient;
  tableName: string;
}): SweepProgressPort => {
  const client =
    options.client instanceof DynamoDBDocumentClient
      ? options.client
      : DynamoDBDocumentClient.from(options.client, { marshallOptions: { removeUndefinedValues: true } });
  return {
    async get(userId, callOptions) {
      let item: Record<string, unknown> | undefined;
      try {
        const answer = await callAws('DynamoDB GetItem (sweep progress)', callOptions, (abortSignal) =>
          client.send(
            new GetCommand({
              TableName: options.tableName,
              Key: { pk: userPartitionKey(userId), sk: sweepSortKey },
              ConsistentRead: true,
            }),
            { abortSignal },
          ),
        );
        item = answer.Item;
      } catch (error) {
        throw storeError(`sweep progress of user ${userId} could not be read`, error);
      }
      if (item === undefined) return undefined;
      const parsed = progressSchema.safeParse(item);
      // A malformed item is not "no progress": starting again is safe, reading it as done is not.
      return parsed.success ? (parsed.data as SweepProgress) : undefined;
    },
    async save(progress, callOptions) {
      try {
        await callAws('DynamoDB PutItem (sweep progress)', callOptions, (abortSignal) =>
          client.send(
            new PutCommand({
              TableName: options.tableName,
              Item: { pk: userPartitionKey(progress.userId), sk: sweepSortKey, ...progress },
            }),
            { abortSignal },
          ),
        );
      } catch (error) {
        throw storeError(`sweep progress of user ${progress.userId} could not be saved`, error);
      }
    },
  };
};

export { createDynamoSweepProgress, sweepSortKey };

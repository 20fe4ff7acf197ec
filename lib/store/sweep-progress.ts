/**
 * The offboarding sweep's progress in the membership table: one item per user
 * (`pk = USER#<userId>`, `sk = SWEEP`), beside the user's state. It is small (a cursor per managed
 * namespace) and written after each page of repositories, so it never grows with the namespace.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import type { CallOptions } from '../domain.ts';
import { StoreError } from '../errors.ts';
import type { SweepProgress, SweepProgressPort } from '../offboarding/progress.ts';
import { userPartitionKey } from './table.ts';

const sweepSortKey = 'SWEEP';

const progressSchema = z.object({
  userId: z.string(),
  offboardedAt: z.string(),
  policyDone: z.boolean(),
  namespaces: z.record(z.string(), z.object({ after: z.string().optional(), done: z.boolean() })),
  checked: z.number().int().nonnegative(),
  startedAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().optional(),
});

const describe = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/** The AWS SDK's abort signal for a call bounded by the caller's deadline. */
const abortSignalOf = (options: CallOptions | undefined): AbortSignal | undefined => {
  const signals: AbortSignal[] = [];
  if (options?.signal !== undefined) signals.push(options.signal);
  if (options?.deadline !== undefined)
    signals.push(AbortSignal.timeout(Math.max(1, options.deadline - Date.now())));
  return signals.length === 0 ? undefined : AbortSignal.any(signals);
};

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
        const answer = await client.send(
          new GetCommand({
            TableName: options.tableName,
            Key: { pk: userPartitionKey(userId), sk: sweepSortKey },
            ConsistentRead: true,
          }),
          { abortSignal: abortSignalOf(callOptions) },
        );
        item = answer.Item;
      } catch (error) {
        throw new StoreError(`sweep progress of user ${userId} could not be read: ${describe(error)}`, {
          cause: error,
        });
      }
      if (item === undefined) return undefined;
      const parsed = progressSchema.safeParse(item);
      // A malformed item is not "no progress": starting again is safe, reading it as done is not.
      return parsed.success ? (parsed.data as SweepProgress) : undefined;
    },
    async save(progress, callOptions) {
      try {
        await client.send(
          new PutCommand({
            TableName: options.tableName,
            Item: { pk: userPartitionKey(progress.userId), sk: sweepSortKey, ...progress },
          }),
          { abortSignal: abortSignalOf(callOptions) },
        );
      } catch (error) {
        throw new StoreError(
          `sweep progress of user ${progress.userId} could not be saved: ${describe(error)}`,
          {
            cause: error,
          },
        );
      }
    },
  };
};

export { createDynamoSweepProgress, sweepSortKey };

/**
 * The membership table: one table, one item per user (`pk = USER#<userId>`, `sk = STATE`).
 * The sort key leaves room for other item types of the same user (audit: `sk = AUDIT#…`), so
 * whatever reads "all users" filters on `sk = STATE`.
 *
 * serverless.yml and the local stack both create the table from `membershipTableDefinition`,
 * so production and tests cannot drift apart.
 */
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { StoreError } from '../errors.ts';

const stateSortKey = 'STATE';

/** @example userPartitionKey('fb3f175c1fd146ab8cdae3272be6107b') // 'USER#fb3f…' */
const userPartitionKey = (userId: string): string => `USER#${userId}`;

/** Key schema, attribute definitions and billing mode: everything of CreateTable but the name. */
const membershipTableDefinition = {
  KeySchema: [
    { AttributeName: 'pk', KeyType: 'HASH' },
    { AttributeName: 'sk', KeyType: 'RANGE' },
  ],
  AttributeDefinitions: [
    { AttributeName: 'pk', AttributeType: 'S' },
    { AttributeName: 'sk', AttributeType: 'S' },
  ],
  BillingMode: 'PAY_PER_REQUEST',
} as const satisfies Omit<CreateTableCommandInput, 'TableName'>;

/** @example await client.send(new CreateTableCommand(createTableInput('swr-access-sync-dev'))) */
const createTableInput = (tableName: string): CreateTableCommandInput => ({
  TableName: tableName,
  KeySchema: membershipTableDefinition.KeySchema.map((key) => ({ ...key })),
  AttributeDefinitions: membershipTableDefinition.AttributeDefinitions.map((attribute) => ({ ...attribute })),
  BillingMode: membershipTableDefinition.BillingMode,
});

const errorName = (error: unknown): string | undefined =>
  typeof error === 'object' && error !== null && 'name' in error ? String(error.name) : undefined;

const tableStatus = async (client: DynamoDBClient, tableName: string): Promise<string | undefined> => {
  try {
    const described = await client.send(new DescribeTableCommand({ TableName: tableName }));
    return described.Table?.TableStatus ?? 'UNKNOWN';
  } catch (error) {
    if (errorName(error) === 'ResourceNotFoundException') return undefined;
    throw error;
  }
};

/**
 * Creates the table when it does not exist and waits until it is ACTIVE (local stack and tests;
 * in AWS the stack creates it). Safe when two callers race to create it.
 *
 * @example await ensureTable(new DynamoDBClient({ endpoint }), 'membership');
 */
const ensureTable = async (
  client: DynamoDBClient,
  tableName: string,
  options: { timeoutMs?: number; pollMs?: number } = {},
): Promise<void> => {
  const { timeoutMs = 30_000, pollMs = 100 } = options;
  if ((await tableStatus(client, tableName)) === undefined) {
    try {
      await client.send(new CreateTableCommand(createTableInput(tableName)));
    } catch (error) {
      if (errorName(error) !== 'ResourceInUseException') throw error;
    }
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await tableStatus(client, tableName);
    if (status === 'ACTIVE') return;
    if (Date.now() >= deadline)
      throw new StoreError(
        `table ${tableName} is not ACTIVE after ${timeoutMs} ms (status ${status ?? 'missing'})`,
      );
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
};

export { createTableInput, ensureTable, membershipTableDefinition, stateSortKey, userPartitionKey };

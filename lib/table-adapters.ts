/**
 * The membership table's adapters on one DynamoDB client: user state, the audit trail,
 * offboarding-sweep progress and the converge lease. The runtimes import this module with `import()` when their first
 * invocation builds its dependencies, beside the policy, the credentials and the SWR client, so the
 * DynamoDB client is a chunk of its own that a cold start does not parse before the handler exists.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createDynamoAuditStore } from './audit/index.ts';
import { awsClientConfig } from './aws.ts';
import type { Log } from './observability.ts';
import { createDynamoStore } from './store/index.ts';
import { createDynamoLease } from './store/lease.ts';
import { createDynamoSweepProgress } from './store/sweep-progress.ts';

interface TableAdapterOptions {
  tableName: string;
  /** Bounds every request (REQUEST_TIMEOUT_MS); each operation is also bounded by its deadline. */
  requestTimeoutMs: number;
  log: Log;
  /** The client (tests, the local stack); by default one from the environment. */
  client?: DynamoDBClient | undefined;
}

/**
 * @example const { store, auditStore, sweepProgress } = createTableAdapters({ tableName, requestTimeoutMs, log });
 */
const createTableAdapters = (options: TableAdapterOptions) => {
  const client = options.client ?? new DynamoDBClient(awsClientConfig(options.requestTimeoutMs));
  const { tableName, log } = options;
  return {
    store: createDynamoStore({ client, tableName, log }),
    // Applied changes are kept in the same table (AUDIT# items), beside the log records.
    auditStore: createDynamoAuditStore({ client, tableName }),
    sweepProgress: createDynamoSweepProgress({ client, tableName }),
    // The access-changes instances converge one at a time (lib/pipeline/apply.ts).
    convergeLease: createDynamoLease({ client, tableName }),
  };
};

export type { TableAdapterOptions };
export { createTableAdapters };

/** The membership store: pick an adapter, everything else speaks `MembershipStorePort`. */
export type { DynamoStoreOptions } from './dynamo.ts';
export { createDynamoStore } from './dynamo.ts';
export type { MemoryStoreOptions } from './memory.ts';
export { createMemoryStore } from './memory.ts';
export {
  createTableInput,
  ensureTable,
  membershipTableDefinition,
  stateSortKey,
  userPartitionKey,
} from './table.ts';

/** The durable audit trail: pick an adapter, everything else speaks `AuditStorePort`. */
export type { DynamoAuditStoreOptions } from './dynamo.ts';
export { createDynamoAuditStore } from './dynamo.ts';
export {
  auditSortKey,
  defaultRetentionDays,
  fromAuditItem,
  nameIndexPartitionKey,
  targetIndexPartitionKey,
  toAuditItem,
} from './items.ts';
export type { MemoryAuditStore } from './memory.ts';
export { createMemoryAuditStore } from './memory.ts';
export type { AuditQueryOptions, AuditStorePort, UserAudit } from './store.ts';
export { auditByUser, durableRecords, newestFirst } from './store.ts';

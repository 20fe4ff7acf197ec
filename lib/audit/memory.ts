/**
 * The audit trail in memory: tests, and a CLI run without a table (what it keeps ends with the
 * process, and the CLI says so).
 */

import { targetKey } from '../domain.ts';
import type { AuditRecord } from '../observability.ts';
import { auditSortKey } from './items.ts';
import { type AuditStorePort, durableRecords, newestFirst } from './store.ts';

interface MemoryAuditStore extends AuditStorePort {
  /** Every record kept, in the order written (tests). */
  all(): AuditRecord[];
}

/**
 * @example
 * const audit = createMemoryAuditStore();
 * deps.audit = (records) => audit.write(records);
 */
const createMemoryAuditStore = (): MemoryAuditStore => {
  // Keyed like the DynamoDB items, so the same record written twice is kept once there too.
  const byKey = new Map<string, AuditRecord>();
  const idsByName = new Map<string, Set<string>>();
  return {
    async write(records) {
      for (const record of durableRecords(records)) {
        byKey.set(`${record.userId} ${auditSortKey(record)}`, structuredClone(record));
        const ids = idsByName.get(record.userName) ?? new Set<string>();
        ids.add(record.userId);
        idsByName.set(record.userName, ids);
      }
    },
    async listByUserId(userId, options = {}) {
      const records = [...byKey.values()]
        .filter((record) => record.userId === userId)
        .sort(newestFirst)
        .map((record) => structuredClone(record));
      return options.limit === undefined ? records : records.slice(0, options.limit);
    },
    async listByTarget(target, options = {}) {
      const key = `${target.kind}:${targetKey(target)}`;
      const records = [...byKey.values()]
        .filter((record) => `${record.target.kind}:${targetKey(record.target)}` === key)
        .sort(newestFirst)
        .map((record) => structuredClone(record));
      return options.limit === undefined ? records : records.slice(0, options.limit);
    },
    async userIdsByName(userName) {
      return [...(idsByName.get(userName) ?? [])].sort();
    },
    all: () => [...byKey.values()].map((record) => structuredClone(record)),
  };
};

export type { MemoryAuditStore };
export { createMemoryAuditStore };

/**
 * The durable audit trail behind one small port, so the pipeline, the CLI and tests share it:
 * DynamoDB in production (the membership table), memory in tests and in a CLI run without a table.
 */
import { userIdRule } from '../core/names.ts';
import type { CallOptions, Target } from '../domain.ts';
import type { AuditRecord } from '../observability.ts';
import { auditSortKey } from './items.ts';

/** A query's bounds: how many records, and by when (a deadline, an abort signal). */
interface AuditQueryOptions extends CallOptions {
  /** Most records returned (newest first); all when unset. */
  limit?: number;
}

/**
 * Every method takes the caller's deadline: past it (or when its signal aborts) it rejects with a
 * retryable `StoreError` whose code is `DEADLINE_EXCEEDED`.
 */
interface AuditStorePort {
  /**
   * Keeps every record of a change that was made durably; throws (a retryable StoreError) when
   * some could not be kept. Dry-run records are not kept (see `durableRecords`).
   */
  write(records: readonly AuditRecord[], options?: CallOptions): Promise<void>;
  /** One user's records, newest first. */
  listByUserId(userId: string, options?: AuditQueryOptions): Promise<AuditRecord[]>;
  /** One target's records (every user), newest first. */
  listByTarget(target: Target, options?: AuditQueryOptions): Promise<AuditRecord[]>;
  /** Every user id that audit records were written for under this user name (sorted). */
  userIdsByName(userName: string, options?: CallOptions): Promise<string[]>;
}

interface UserAudit {
  /** The user ids the argument stood for (several when a name was reused or renamed). */
  userIds: string[];
  /** Newest first. */
  records: AuditRecord[];
}

/**
 * What the durable audit keeps: changes that were made. A dry run changed nothing, so its records
 * stay out: someone reading `audit` months later must never take a preview for a fact, however it
 * is marked. Previews are in the run's own output (`plan`, `reconcile --dry-run`) and in the log
 * (`access changed` records with `dryRun: true`).
 *
 * @example await store.write(durableRecords(report.changes));
 */
const durableRecords = (records: readonly AuditRecord[]): AuditRecord[] =>
  records.filter((record) => !record.dryRun);

/** Newest first; at the same instant, by key (stable across both stores). */
const newestFirst = (a: AuditRecord, b: AuditRecord): number => {
  const left = auditSortKey(a);
  const right = auditSortKey(b);
  return left < right ? 1 : left > right ? -1 : 0;
};

/**
 * A user's history by IAM user id or by user name. An id (32 lowercase hex) is read directly; a
 * name goes through the name index the store keeps with every record, not through IAM: the
 * people an auditor asks about have often been deleted from IAM already. A value that looks like
 * an id but has no records is also tried as a name.
 *
 * @example const { records } = await auditByUser(store, 'alice', { limit: 20 });
 */
const auditByUser = async (
  store: AuditStorePort,
  userIdOrName: string,
  options: AuditQueryOptions = {},
): Promise<UserAudit> => {
  if (userIdRule(userIdOrName) === undefined) {
    const records = await store.listByUserId(userIdOrName, options);
    if (records.length > 0) return { userIds: [userIdOrName], records };
  }
  const userIds = await store.userIdsByName(userIdOrName, {
    ...(options.deadline === undefined ? {} : { deadline: options.deadline }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const lists = await Promise.all(userIds.map((userId) => store.listByUserId(userId, options)));
  const records = lists.flat().sort(newestFirst);
  return {
    userIds,
    records: options.limit === undefined ? records : records.slice(0, options.limit),
  };
};

export type { AuditQueryOptions, AuditStorePort, UserAudit };
export { auditByUser, durableRecords, newestFirst };

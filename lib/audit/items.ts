/**
 * How audit records live in the membership table, next to the user's STATE item:
 * - one item per applied change: `pk = USER#<userId>`, `sk = AUDIT#<ISO time>#<digest>`;
 * - the same record again under its target: `pk = TARGET#<target key>`, same `sk`, so that
 *   "who had access to this repository, and when" is one Query (`audit --target`) and not a Scan;
 * - one name-index item per (user name, user id): `pk = NAME#<userName>`, `sk = AUDIT#USER#<userId>`,
 *   so that a user can be looked up by the name the records were written under, even after IAM
 *   has deleted or renamed them (offboarded people are exactly who an auditor asks about).
 *
 * The digest is a hash of the record's content: two changes at the same millisecond (two targets
 * of one batch, or two functions) get distinct keys, and writing the same record twice (a retried
 * batch write) overwrites instead of duplicating.
 */
import { createHash } from 'node:crypto';
import { type AuthLevel, AuthLevels, type Target, targetKey } from '../domain.ts';
import { StoreError } from '../errors.ts';
import type { AuditRecord } from '../observability.ts';
import { userPartitionKey } from '../store/table.ts';
import * as z from '../zod.ts';

const auditSortKeyPrefix = 'AUDIT#';
/** DynamoDB TTL needs epoch seconds; 400 days keeps a year of history plus a margin. */
const defaultRetentionDays = 400;
const secondsPerDay = 86_400;

/** @example nameIndexPartitionKey('alice') // 'NAME#alice' */
const nameIndexPartitionKey = (userName: string): string => `NAME#${userName}`;
const nameIndexSortKey = (userId: string): string => `${auditSortKeyPrefix}USER#${userId}`;

/**
 * Repository keys contain a `/` and namespace names never do, so one prefix serves both kinds.
 *
 * @example targetIndexPartitionKey({ kind: 'repo', namespace: 'core', repository: 'api/server' }) // 'TARGET#core/api/server'
 */
const targetIndexPartitionKey = (target: Target): string => `TARGET#${targetKey(target)}`;

const digestOf = (record: AuditRecord): string =>
  createHash('sha256')
    .update(
      JSON.stringify([
        record.actor,
        record.eventIds,
        record.sources,
        record.userId,
        record.userName,
        record.target.kind,
        targetKey(record.target),
        record.before ?? null,
        record.after ?? null,
        record.dryRun,
        // Only when set, so that records written before reasons were kept keep their keys.
        ...(record.reason === undefined ? [] : [record.reason]),
      ]),
    )
    .digest('hex')
    .slice(0, 16);

/**
 * Sorts by time first: ISO strings from `toISOString()` have one width and zone, so the string
 * order is the time order and a Query with `ScanIndexForward: false` lists newest first.
 *
 * @example auditSortKey(record) // 'AUDIT#2026-11-20T10:00:00.000Z#3f2a…'
 */
const auditSortKey = (record: AuditRecord): string => `${auditSortKeyPrefix}${record.at}#${digestOf(record)}`;

/** Epoch seconds at which DynamoDB TTL may delete the item (counted from the change). */
const expiresAtEpochOf = (at: string, retentionDays: number): number =>
  Math.floor(Date.parse(at) / 1000) + retentionDays * secondsPerDay;

const toAuditItem = (record: AuditRecord, retentionDays: number): Record<string, unknown> => ({
  pk: userPartitionKey(record.userId),
  sk: auditSortKey(record),
  at: record.at,
  actor: record.actor,
  eventIds: record.eventIds,
  sources: record.sources,
  userId: record.userId,
  userName: record.userName,
  target: { ...record.target },
  targetKey: targetKey(record.target),
  ...(record.before === undefined ? {} : { before: record.before }),
  ...(record.after === undefined ? {} : { after: record.after }),
  dryRun: record.dryRun,
  ...(record.reason === undefined ? {} : { reason: record.reason }),
  expiresAtEpoch: expiresAtEpochOf(record.at, retentionDays),
});

/** The record again, under its target's partition (read back with `fromAuditItem`). */
const toTargetIndexItem = (record: AuditRecord, retentionDays: number): Record<string, unknown> => ({
  ...toAuditItem(record, retentionDays),
  pk: targetIndexPartitionKey(record.target),
});

const toNameIndexItem = (record: AuditRecord, retentionDays: number): Record<string, unknown> => ({
  pk: nameIndexPartitionKey(record.userName),
  sk: nameIndexSortKey(record.userId),
  userId: record.userId,
  userName: record.userName,
  lastAt: record.at,
  expiresAtEpoch: expiresAtEpochOf(record.at, retentionDays),
});

const levelSchema = z.union([
  z.literal(AuthLevels.read),
  z.literal(AuthLevels.write),
  z.literal(AuthLevels.manage),
]);

const targetSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('repo'), namespace: z.string(), repository: z.string() }),
  z.object({ kind: z.literal('namespace'), namespace: z.string() }),
]);

const auditItemSchema = z.object({
  sk: z.string(),
  at: z.string(),
  actor: z.string(),
  eventIds: z.array(z.string()),
  sources: z.array(z.string()),
  userId: z.string(),
  userName: z.string(),
  target: targetSchema,
  before: z.optional(levelSchema),
  after: z.optional(levelSchema),
  dryRun: z.boolean(),
  reason: z.optional(z.string()),
});

/** Reads an audit item back; a malformed one is a StoreError naming its key (never guessed at). */
const fromAuditItem = (item: Record<string, unknown>): AuditRecord => {
  const parsed = auditItemSchema.safeParse(item);
  if (!parsed.success)
    throw new StoreError(
      `audit item ${String(item.pk)} ${String(item.sk)} is malformed: ${z.prettifyError(parsed.error).slice(0, 500)}`,
    );
  const { data } = parsed;
  const target: Target =
    data.target.kind === 'repo'
      ? { kind: 'repo', namespace: data.target.namespace, repository: data.target.repository }
      : { kind: 'namespace', namespace: data.target.namespace };
  return {
    at: data.at,
    actor: data.actor,
    eventIds: data.eventIds,
    sources: data.sources,
    userId: data.userId,
    userName: data.userName,
    target,
    before: data.before as AuthLevel | undefined,
    after: data.after as AuthLevel | undefined,
    dryRun: data.dryRun,
    ...(data.reason === undefined ? {} : { reason: data.reason }),
  };
};

export {
  auditSortKey,
  auditSortKeyPrefix,
  defaultRetentionDays,
  expiresAtEpochOf,
  fromAuditItem,
  nameIndexPartitionKey,
  nameIndexSortKey,
  targetIndexPartitionKey,
  toAuditItem,
  toNameIndexItem,
  toTargetIndexItem,
};

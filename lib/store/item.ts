/**
 * A user's record as one DynamoDB item (see table.ts for the keys): the mapping both ways, and
 * the schema every item read is checked against. A malformed item is a `StoreError`, never "no
 * teams": the record decides who loses access.
 */

import { eventSchema } from '../core/events.ts';
import type { ResolvedEvent, UserRecord } from '../domain.ts';
import { StoreError } from '../errors.ts';
import * as z from '../zod.ts';
import { stateSortKey, userPartitionKey } from './table.ts';

// Loose: attributes a later version adds to a team fact survive a rewrite by this one.
const teamFactSchema = z.looseObject({
  member: z.boolean(),
  at: z.string(),
  eventId: z.string(),
  expiresAt: z.optional(z.string()),
});

// A pending event was validated when it arrived; it must still be one, with its user resolved.
const pendingEventSchema = eventSchema.check(
  z.refine((event) => event.user.id !== undefined && event.user.name !== undefined, {
    error: 'a pending event must carry the resolved user id and name',
  }),
);

const itemSchema = z.object({
  userId: z.string(),
  userName: z.string(),
  teams: z.record(z.string(), teamFactSchema),
  offboardedAt: z.optional(z.string()),
  snapshotAt: z.optional(z.string()),
  floorAt: z.optional(z.string()),
  pending: z.optional(z.array(pendingEventSchema)),
  version: z.int().check(z.nonnegative()),
  updatedAt: z.optional(z.string()),
});

/** Reads a STATE item back; throws a `StoreError` naming the item when it is malformed. */
const toRecord = (item: Record<string, unknown>): UserRecord => {
  const parsed = itemSchema.safeParse(item);
  if (!parsed.success)
    throw new StoreError(
      `membership item ${String(item.pk)} is malformed: ${z.prettifyError(parsed.error).slice(0, 500)}`,
    );
  const { offboardedAt, snapshotAt, floorAt, updatedAt, pending, ...rest } = parsed.data;
  return {
    ...rest,
    ...(offboardedAt === undefined ? {} : { offboardedAt }),
    ...(snapshotAt === undefined ? {} : { snapshotAt }),
    ...(floorAt === undefined ? {} : { floorAt }),
    // The refinement checked that both halves of each user are there.
    ...(pending === undefined || pending.length === 0 ? {} : { pending: pending as ResolvedEvent[] }),
    ...(updatedAt === undefined ? {} : { updatedAt }),
  };
};

/** The STATE item of a record, as written. */
const toItem = (record: UserRecord): Record<string, unknown> => ({
  pk: userPartitionKey(record.userId),
  sk: stateSortKey,
  userId: record.userId,
  userName: record.userName,
  teams: record.teams,
  version: record.version,
  ...(record.offboardedAt === undefined ? {} : { offboardedAt: record.offboardedAt }),
  ...(record.snapshotAt === undefined ? {} : { snapshotAt: record.snapshotAt }),
  ...(record.floorAt === undefined ? {} : { floorAt: record.floorAt }),
  ...(record.pending === undefined || record.pending.length === 0 ? {} : { pending: record.pending }),
  ...(record.updatedAt === undefined ? {} : { updatedAt: record.updatedAt }),
});

export { toItem, toRecord };

/**
 * Exact compaction of a user's record: dropping left-team markers (`member: false` facts) that
 * the record's watermarks already decide. Pure, no I/O; the store decides when to run it.
 *
 * Why it changes no verdict (see `factOf` in membership.ts):
 * - a team absent from the record, or held by a marker older than the left watermark
 *   (`max(snapshotAt, floorAt)`), counts as left at that watermark: a marker at or before it
 *   stands for exactly what its absence stands for;
 * - the offboarding tombstone at T decides every fact at or before T before any team is looked
 *   at, and a fact after T beats a marker at or before T as it beats an absent team: a marker at
 *   or before T is redundant too.
 * So every marker at or before `max(snapshotAt, offboardedAt, floorAt)` can go. Member facts
 * always stay (they are the access), and so do markers after the watermark (they make an older
 * late join stale for that team).
 */
import type { UserRecord } from '../domain.ts';
import { instant } from './membership.ts';

/**
 * The instant up to which every left-team marker is redundant, if any.
 *
 * @example compactionWatermark({ ...record, snapshotAt: '2026-11-01T00:00:00Z', offboardedAt: '2026-11-20T00:00:00Z' }) // '2026-11-20T00:00:00Z'
 */
const compactionWatermark = (record: UserRecord): string | undefined =>
  [record.snapshotAt, record.offboardedAt, record.floorAt].reduce<string | undefined>(
    (latest, time) =>
      time === undefined || (latest !== undefined && instant(latest) >= instant(time)) ? latest : time,
    undefined,
  );

/**
 * The record without the markers at or before `upTo` (the same object when none is), and the
 * teams dropped (sorted). Exact only for an `upTo` no later than `compactionWatermark(record)`.
 *
 * @example dropMarkersUpTo(record, record.offboardedAt).dropped // ['backend', 'platform']
 */
const dropMarkersUpTo = (
  record: UserRecord,
  upTo: string | undefined,
): { record: UserRecord; dropped: string[] } => {
  if (upTo === undefined) return { record, dropped: [] };
  const limit = instant(upTo);
  const dropped = Object.entries(record.teams)
    .filter(([, fact]) => !fact.member && instant(fact.at) <= limit)
    .map(([team]) => team)
    .sort();
  if (dropped.length === 0) return { record, dropped };
  const gone = new Set(dropped);
  const teams = Object.fromEntries(Object.entries(record.teams).filter(([team]) => !gone.has(team)));
  return { record: { ...record, teams }, dropped };
};

/**
 * Drops every marker the watermarks decide: the record reads exactly as before for every later
 * event (same verdicts, same current teams), only smaller.
 *
 * @example const { record: small, dropped } = compactRecord(record);
 */
const compactRecord = (record: UserRecord): { record: UserRecord; dropped: string[] } =>
  dropMarkersUpTo(record, compactionWatermark(record));

export { compactionWatermark, compactRecord, dropMarkersUpTo };

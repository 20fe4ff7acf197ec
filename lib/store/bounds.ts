/**
 * Keeps every user's record within one DynamoDB item. DynamoDB refuses an item over 400 KB
 * (409,600 bytes, names and values counted); a record that could no longer be written could no
 * longer be offboarded. Before every write the store fits the record to `maxRecordItemBytes`:
 *
 * 1. always: drop the left-team markers at or before the tombstone (exact, and the planner checks
 *    every target for an offboarded user anyway, so it never needs them);
 * 2. over the budget: drop every marker the watermarks decide (exact: `compactRecord`);
 * 3. still over: drop the oldest markers, raising `floorAt` to the newest one dropped (a loss, and
 *    a conservative one: a late fact older than the floor, about a team the user is not in,
 *    counts as stale);
 * 4. still over, and the write records an offboarding: drop, in this order, pending joins,
 *    memberships newer than the tombstone (a rehire), pending snapshots (oldest first) and the
 *    remaining pending events, until it fits. Each step only removes access that nothing later
 *    could take away: the tombstone is never refused;
 * 5. still over, otherwise: a write that does not grow the stored record is let through (a
 *    removal or an expiry must always be recordable); one that grows it is refused with a
 *    permanent `StoreError` `STORE_ITEM_TOO_LARGE` naming the user, the size and what fills it.
 */
import { compactRecord, dropMarkersUpTo } from '../core/compaction.ts';
import { factTime, instant } from '../core/membership.ts';
import type { RecordFit, ResolvedEvent, UserRecord } from '../domain.ts';
import { ErrorCodes, StoreError } from '../errors.ts';
import type { Log } from '../observability.ts';
import { toItem } from './item.ts';
import {
  dynamoItemLimitBytes,
  dynamoItemSize,
  dynamoListElementSize,
  dynamoMapEntrySize,
} from './item-size.ts';

/**
 * The budget of one record: 320 KiB of DynamoDB's 400 KB (80 % of it). The size is DynamoDB's
 * own count (attribute names included), so the margin is not for names: it is for attributes a
 * later version adds to the item (the schema keeps unknown team-fact attributes), and for
 * DynamoDB counting a number or a map a few bytes differently than its documentation says.
 * Pending events may take half of it (`maxPendingBytes`), the memberships the rest.
 */
const maxRecordItemBytes = 320 * 1024;

/** Team names a log record lists (the counts are always complete). */
const loggedNames = 20;

/** A stand-in `updatedAt` and the largest version: measure the record as it will be written. */
const measured = (record: UserRecord): UserRecord => ({
  ...record,
  version: Number.MAX_SAFE_INTEGER,
  updatedAt: '2026-01-01T00:00:00.000Z',
});

/**
 * Bytes DynamoDB counts for the item of a record once written.
 *
 * @example recordItemBytes(record) // 1834
 */
const recordItemBytes = (record: UserRecord): number => dynamoItemSize(toItem(measured(record)));

/** `floorAt` costs its name and an ISO instant; reserve it before the attribute exists. */
const floorAttributeBytes = 'floorAt'.length + '+275760-09-13T00:00:00.000Z'.length;

const later = (a: string | undefined, b: string): string =>
  a === undefined || instant(b) > instant(a) ? b : a;

interface FitState {
  record: UserRecord;
  bytes: number;
  fit: RecordFit;
}

const withoutTeams = (record: UserRecord, gone: ReadonlySet<string>): UserRecord => ({
  ...record,
  teams: Object.fromEntries(Object.entries(record.teams).filter(([team]) => !gone.has(team))),
});

const withoutPending = (record: UserRecord, gone: ReadonlySet<string>): UserRecord => {
  const { pending, ...rest } = record;
  const kept = (pending ?? []).filter((event) => !gone.has(event.id));
  return kept.length === 0 ? rest : { ...rest, pending: kept };
};

/** Step 3: the oldest markers go first (ties: by team), and `floorAt` covers them. */
const pruneOldestMarkers = (state: FitState, budget: number): FitState => {
  const markers = Object.entries(state.record.teams)
    .filter(([, fact]) => !fact.member)
    .sort(([a, x], [b, y]) => instant(x.at) - instant(y.at) || (a < b ? -1 : a > b ? 1 : 0));
  if (markers.length === 0) return state;
  let bytes = state.bytes + (state.record.floorAt === undefined ? floorAttributeBytes : 0);
  let floorAt = state.record.floorAt;
  for (const [team, fact] of markers) {
    if (bytes <= budget) break;
    bytes -= dynamoMapEntrySize(team, fact);
    floorAt = later(floorAt, fact.at);
  }
  if (floorAt === state.record.floorAt) return state;
  // Every marker at or before the new floor is now redundant: drop them all (ties included).
  const { record, dropped } = dropMarkersUpTo({ ...state.record, floorAt: floorAt as string }, floorAt);
  return {
    record,
    bytes: recordItemBytes(record),
    fit: {
      ...state.fit,
      prunedTeams: [...state.fit.prunedTeams, ...dropped].sort(),
      floorAt: floorAt as string,
    },
  };
};

const byInstant =
  (direction: 1 | -1) =>
  (a: { at: number; index: number }, b: { at: number; index: number }): number =>
    direction * (a.at - b.at || a.index - b.index);

/** Drops pending events matching `pick`, in `order`, until the record fits. */
const dropPending = (
  state: FitState,
  budget: number,
  pick: (event: ResolvedEvent) => boolean,
  order: 1 | -1,
): FitState => {
  if (state.bytes <= budget) return state;
  const candidates = (state.record.pending ?? [])
    .map((event, index) => ({ event, index, at: instant(factTime(event)) }))
    .filter(({ event }) => pick(event))
    .sort(byInstant(order));
  let bytes = state.bytes;
  const gone = new Set<string>();
  for (const { event } of candidates) {
    if (bytes <= budget) break;
    bytes -= dynamoListElementSize(event);
    gone.add(event.id);
  }
  if (gone.size === 0) return state;
  const record = withoutPending(state.record, gone);
  return {
    record,
    bytes: recordItemBytes(record),
    fit: { ...state.fit, droppedPending: [...state.fit.droppedPending, ...gone] },
  };
};

/** Drops memberships newer than the tombstone (newest first), the floor rising to cover them. */
const dropRehires = (state: FitState, budget: number): FitState => {
  if (state.bytes <= budget || state.record.offboardedAt === undefined) return state;
  const tombstone = instant(state.record.offboardedAt);
  const rehires = Object.entries(state.record.teams)
    .filter(([, fact]) => fact.member && instant(fact.at) > tombstone)
    .sort(([a, x], [b, y]) => instant(y.at) - instant(x.at) || (a < b ? -1 : a > b ? 1 : 0));
  let bytes = state.bytes + (state.record.floorAt === undefined ? floorAttributeBytes : 0);
  let floorAt = state.record.floorAt;
  const gone = new Set<string>();
  for (const [team, fact] of rehires) {
    if (bytes <= budget) break;
    bytes -= dynamoMapEntrySize(team, fact);
    floorAt = later(floorAt, fact.at);
    gone.add(team);
  }
  if (gone.size === 0) return state;
  // A late join older than a dropped membership must not bring it back: the floor covers it.
  const record = { ...withoutTeams(state.record, gone), floorAt: floorAt as string };
  return {
    record,
    bytes: recordItemBytes(record),
    fit: {
      ...state.fit,
      droppedTeams: [...state.fit.droppedTeams, ...gone].sort(),
      floorAt: floorAt as string,
    },
  };
};

/** Step 4: whatever must go for the tombstone to be stored; each step removes access only. */
const shedForTombstone = (state: FitState, budget: number): FitState => {
  let next = dropPending(state, budget, (event) => event.type === 'membership.added', -1);
  next = dropRehires(next, budget);
  // Oldest first: a newer snapshot may remove what an older one grants, never the reverse.
  next = dropPending(next, budget, (event) => event.type === 'user.teams', 1);
  // Nothing left grants anything: the rest (removals, offboardings) can go in any order.
  return dropPending(next, budget, () => true, -1);
};

const describeContent = (record: UserRecord): string => {
  const members = Object.entries(record.teams).filter(([, fact]) => fact.member);
  const memberBytes = members.reduce((sum, [team, fact]) => sum + dynamoMapEntrySize(team, fact), 0);
  const pending = record.pending ?? [];
  const pendingBytes = pending.reduce((sum, event) => sum + dynamoListElementSize(event), 0);
  return (
    `${members.length} current memberships (${memberBytes} bytes) and ` +
    `${pending.length} future-effective events (${pendingBytes} bytes)`
  );
};

interface FitOptions {
  /** The record as stored before this write (`undefined` for a new user). */
  before: UserRecord | undefined;
  /** Item budget in bytes (default `maxRecordItemBytes`); tests pass a small one. */
  budget?: number;
}

/**
 * Fits a record that is about to be written (see the module comment for the steps). Returns the
 * record to write and, when anything beyond step 1 was needed, what it cost.
 *
 * @example
 * const { record, fit } = fitRecord(after, { before });
 * if (fit !== undefined) log.warn('membership record trimmed to fit one item', { ...fit });
 */
const fitRecord = (
  record: UserRecord,
  options: FitOptions,
): { record: UserRecord; fit: RecordFit | undefined } => {
  const budget = options.budget ?? maxRecordItemBytes;
  const first = dropMarkersUpTo(record, record.offboardedAt);
  const bytes = recordItemBytes(first.record);
  if (bytes <= budget) return { record: first.record, fit: undefined };

  const exact = compactRecord(first.record);
  let state: FitState = {
    record: exact.record,
    bytes: recordItemBytes(exact.record),
    fit: {
      bytes: 0,
      budget,
      compactedTeams: [...first.dropped, ...exact.dropped].sort(),
      prunedTeams: [],
      droppedPending: [],
      droppedTeams: [],
    },
  };
  // Each round drops at least one marker; the floor's own attribute is only estimated per round.
  for (let next = state; state.bytes > budget; state = next) {
    next = pruneOldestMarkers(state, budget);
    if (next === state) break;
  }
  const tombstoneMoved =
    state.record.offboardedAt !== undefined && state.record.offboardedAt !== options.before?.offboardedAt;
  if (state.bytes > budget && tombstoneMoved) state = shedForTombstone(state, budget);
  if (
    state.bytes > budget &&
    !tombstoneMoved &&
    (options.before === undefined || state.bytes > recordItemBytes(options.before))
  )
    throw new StoreError(
      `the membership record of user ${record.userId} would be ${state.bytes} bytes, over its ` +
        `${budget}-byte budget in one DynamoDB item (limit ${dynamoItemLimitBytes}), even without ` +
        `left-team markers: ${describeContent(state.record)}. Remove teams from the user (a ` +
        'user.teams snapshot with fewer teams), or send future-effective events when they are due',
      { code: ErrorCodes.storeItemTooLarge, retryable: false },
    );
  return { record: state.record, fit: { ...state.fit, bytes: state.bytes } };
};

/**
 * Logs what fitting a record into one item cost: losses as a warning, exact compaction as info.
 *
 * @example reportFit(log, userId, result.fit);
 */
const reportFit = (
  log: Pick<Log, 'info' | 'warn'> | undefined,
  userId: string,
  fit: RecordFit | undefined,
): void => {
  if (log === undefined || fit === undefined) return;
  // Thousands of team names would make one log record of hundreds of KB: counts, and the first few.
  const some = (names: readonly string[]) => ({ count: names.length, first: names.slice(0, loggedNames) });
  const attributes = {
    userId,
    bytes: fit.bytes,
    budget: fit.budget,
    compactedTeams: some(fit.compactedTeams),
    prunedTeams: some(fit.prunedTeams),
    ...(fit.floorAt === undefined ? {} : { floorAt: fit.floorAt }),
    droppedPending: fit.droppedPending,
    droppedTeams: some(fit.droppedTeams),
  };
  if (fit.prunedTeams.length + fit.droppedPending.length + fit.droppedTeams.length > 0)
    log.warn(
      'membership record trimmed to fit one DynamoDB item; late facts older than floorAt count as stale',
      attributes,
    );
  else log.info('membership record compacted to fit one DynamoDB item; nothing lost', attributes);
};

export type { FitOptions };
export { fitRecord, maxRecordItemBytes, recordItemBytes, reportFit };

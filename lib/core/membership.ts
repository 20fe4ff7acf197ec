/**
 * The membership reducer: what one event does to what the service knows of a user (design.md,
 * "Order and staleness"). Pure: no I/O; the clock is an argument; the store bumps the version.
 *
 * Every fact carries the instant it takes effect, and each team keeps the instant of its last
 * fact, so events may arrive in any order and twice and still end in the same record:
 * - an older fact than the stored one is stale; the same fact again is a duplicate;
 * - a join and a removal at the same instant: the removal wins (the safer answer);
 * - the offboarding tombstone beats every fact up to its instant; a later join (rehire) counts;
 * - a team the record does not hold, or holds by a removal older than the left watermark (the
 *   last snapshot, or `floorAt` once the store pruned markers to fit one item), counts as left at
 *   the watermark: so the store may drop such markers (lib/core/compaction.ts) without changing
 *   any verdict.
 *
 * Time-bound access:
 * - a fact's instant is its event's `effectiveAt` when set, else `occurredAt`: a leaver's last
 *   day (removal effective on the 30th) beats a join of the 10th, whenever either arrived;
 * - an event whose `effectiveAt` is after `now` is kept in `record.pending` (`deferred`) and applied by
 *   `settleRecord` once due, in order of instant, exactly as if it had arrived then;
 * - an offboarding cancels the pending events effective at or before it (they could only be
 *   superseded); pending events after it (a future rehire) stay;
 * - a membership with `expiresAt` stops being current at that instant (`isMemberAt`), and
 *   `settleRecord` turns it into a removal at `expiresAt`. Expiries settle before events of the
 *   same instant (the removal wins ties). A renewal (a newer join) replaces the expiring fact
 *   while it is still current; once the expiry is settled, only a join newer than it counts.
 */
import {
  type ApplyOutcome,
  ApplyStatuses,
  type ResolvedEvent,
  type TeamFact,
  type UserRecord,
} from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';

type Verdict = typeof ApplyStatuses.applied | typeof ApplyStatuses.duplicate | typeof ApplyStatuses.stale;

/** Bounds of `UserRecord.pending`: it lives inside the user's one DynamoDB item (400 KB). */
const maxPendingEvents = 100;
/**
 * Half the record's item budget (lib/store/bounds.ts), so waiting events can never crowd out the
 * memberships; room for one `user.teams` snapshot of a large organisation (1,000 teams of
 * 128-character names is about 130 KB). Measured as UTF-8 JSON, which for these shapes is never
 * less than what DynamoDB counts for the same data.
 */
const maxPendingBytes = 160 * 1024;

/** Size of pending events as counted against `maxPendingBytes`. */
const pendingBytesOf = (events: readonly ResolvedEvent[]): number =>
  events.reduce((sum, event) => sum + Buffer.byteLength(JSON.stringify(event), 'utf8'), 0);

/** A future-effective event that cannot wait in the store: the user's pending list is full. */
class PendingLimitError extends SyncError {
  readonly userId: string;

  constructor(userId: string, eventId: string, why: string, options?: ErrorOptions) {
    // Permanent: the list only shrinks as time passes; retrying within maxReceiveCount cannot help.
    super(
      `user ${userId} ${why}; event ${eventId} cannot be kept until it takes effect: ` +
        'send it again once it is due (without effectiveAt), or as smaller events',
      { ...options, code: ErrorCodes.schema, retryable: false },
    );
    this.name = 'PendingLimitError';
    this.userId = userId;
  }
}

/** Instants, not strings: `10:00:00Z` and `11:00:00+01:00` are the same time. */
const instant = (iso: string): number => Date.parse(iso);

/**
 * When an event's fact takes effect: `effectiveAt` when set, else `occurredAt`.
 *
 * @example factTime({ ...event, occurredAt: '2026-11-01T09:00:00Z', effectiveAt: '2026-11-30T17:00:00Z' }) // '2026-11-30T17:00:00Z'
 */
const factTime = (event: ResolvedEvent): string => event.effectiveAt ?? event.occurredAt;

/**
 * Whether a team fact makes the user a member at `now`: a member fact whose expiry (if any) is
 * after `now`. Without `now` the expiry is not looked at (for callers that cannot know time).
 *
 * @example isMemberAt({ member: true, at, eventId, expiresAt: '2026-12-31T00:00:00Z' }, new Date('2027-01-01T00:00:00Z')) // false
 */
const isMemberAt = (fact: TeamFact, now?: Date): boolean =>
  fact.member &&
  (now === undefined || fact.expiresAt === undefined || now.getTime() < instant(fact.expiresAt));

/**
 * The instant up to which every team the user is not a member of counts as left: the last
 * snapshot (a team it did not list was left then) or the floor raised when markers were pruned.
 */
const leftWatermark = (record: UserRecord): string | undefined => {
  const { snapshotAt, floorAt } = record;
  if (snapshotAt === undefined) return floorAt;
  if (floorAt === undefined) return snapshotAt;
  return instant(floorAt) > instant(snapshotAt) ? floorAt : snapshotAt;
};

/**
 * The fact that stands for a team. A team the record does not hold, or holds only by a marker
 * older than the left watermark, was left at the watermark, if any: so a marker at or before the
 * watermark says nothing the record does not already say, and compaction may drop it.
 * Team names are data: `constructor` or `toString` never read as stored.
 */
const factOf = (record: UserRecord, team: string): TeamFact | undefined => {
  const watermark = leftWatermark(record);
  const stored = Object.hasOwn(record.teams, team) ? record.teams[team] : undefined;
  if (stored !== undefined && (stored.member || watermark === undefined)) return stored;
  if (watermark === undefined) return undefined;
  if (stored !== undefined && instant(stored.at) >= instant(watermark)) return stored;
  return { member: false, at: watermark, eventId: stored?.eventId ?? '' };
};

/** What a membership fact (`member` at `at`) does to the fact stored for its team. */
const judge = (stored: TeamFact | undefined, member: boolean, at: number): Verdict => {
  if (stored === undefined) return ApplyStatuses.applied;
  const storedAt = instant(stored.at);
  if (at < storedAt) return ApplyStatuses.stale;
  if (at > storedAt) return ApplyStatuses.applied;
  if (stored.member === member) return ApplyStatuses.duplicate;
  return member ? ApplyStatuses.stale : ApplyStatuses.applied;
};

const reasons: Record<Verdict, string> = {
  applied: 'applied',
  duplicate: 'the same fact is already stored',
  stale: 'a newer fact (or a removal at the same instant) is already stored',
};

const emptyRecord = (event: ResolvedEvent): UserRecord => ({
  userId: event.user.id,
  userName: event.user.name,
  teams: {},
  version: 0,
});

type Step = { record: UserRecord; outcome: ApplyOutcome };

/** Applies per-team facts (all at one instant) and sums them up into one outcome. */
const applyFacts = (
  record: UserRecord,
  event: ResolvedEvent,
  facts: ReadonlyArray<{ team: string; member: boolean; expiresAt?: string }>,
): Step => {
  const time = factTime(event);
  const at = instant(time);
  const teams = { ...record.teams };
  const changedTeams: string[] = [];
  const verdicts = new Set<Verdict>();
  // A newer snapshot moves the watermark even when no stored team changes (e.g. an empty list).
  const snapshotMoves =
    event.type === 'user.teams' && (record.snapshotAt === undefined || at > instant(record.snapshotAt));
  if (snapshotMoves) verdicts.add(ApplyStatuses.applied);
  else if (event.type === 'user.teams' && record.snapshotAt !== undefined && at < instant(record.snapshotAt))
    verdicts.add(ApplyStatuses.stale);
  for (const { team, member, expiresAt } of facts) {
    const verdict = judge(factOf(record, team), member, at);
    verdicts.add(verdict);
    if (verdict !== ApplyStatuses.applied) continue;
    teams[team] = { member, at: time, eventId: event.id, ...(expiresAt === undefined ? {} : { expiresAt }) };
    changedTeams.push(team);
  }
  const status: Verdict = verdicts.has(ApplyStatuses.applied)
    ? ApplyStatuses.applied
    : verdicts.has(ApplyStatuses.stale)
      ? ApplyStatuses.stale
      : ApplyStatuses.duplicate;
  if (status !== ApplyStatuses.applied)
    return { record, outcome: { eventId: event.id, status, changedTeams: [], reason: reasons[status] } };
  return {
    record: {
      ...record,
      // An empty name (a removal resolved without IAM) keeps the one the store has.
      userName: event.user.name || record.userName,
      teams,
      ...(snapshotMoves ? { snapshotAt: time } : {}),
    },
    outcome: { eventId: event.id, status, changedTeams: changedTeams.sort() },
  };
};

/** The record with another pending list (absent when empty, so settled records look as before). */
const withPending = (record: UserRecord, pending: readonly ResolvedEvent[]): UserRecord => {
  const { pending: _old, ...rest } = record;
  return pending.length === 0 ? rest : { ...rest, pending: [...pending] };
};

const applyOffboarding = (record: UserRecord, event: ResolvedEvent): Step => {
  const time = factTime(event);
  const at = instant(time);
  const teams = { ...record.teams };
  const changedTeams: string[] = [];
  for (const team of Object.keys(record.teams)) {
    // The same verdict a removal at the offboarding instant gets: later facts (a rehire) stay.
    if (judge(factOf(record, team), false, at) !== ApplyStatuses.applied) continue;
    teams[team] = { member: false, at: time, eventId: event.id };
    changedTeams.push(team);
  }
  // Pending facts up to the tombstone could only be superseded when due: drop them now.
  const pending = record.pending ?? [];
  const kept = pending.filter((waiting) => instant(factTime(waiting)) > at);
  const cancelled = pending
    .filter((waiting) => instant(factTime(waiting)) <= at)
    .map((waiting) => waiting.id);
  return {
    record: withPending(
      { ...record, userName: event.user.name || record.userName, teams, offboardedAt: time },
      kept,
    ),
    outcome: {
      eventId: event.id,
      status: ApplyStatuses.applied,
      changedTeams: changedTeams.sort(),
      ...(cancelled.length === 0 ? {} : { cancelled }),
    },
  };
};

/** The outcome of an event the tombstone already decides, or `undefined`. */
const decidedByTombstone = (record: UserRecord, event: ResolvedEvent): ApplyOutcome | undefined => {
  if (record.offboardedAt === undefined) return undefined;
  const at = instant(factTime(event));
  const tombstone = instant(record.offboardedAt);
  if (at > tombstone) return undefined;
  if (event.type === 'user.offboarded')
    return {
      eventId: event.id,
      status: at === tombstone ? ApplyStatuses.duplicate : ApplyStatuses.stale,
      changedTeams: [],
      reason: `the user is already offboarded at ${record.offboardedAt}`,
    };
  return {
    eventId: event.id,
    status: ApplyStatuses.supersededByOffboarding,
    changedTeams: [],
    reason: `the fact is not newer than the offboarding at ${record.offboardedAt}`,
  };
};

/** Keeps a future event in the record, in order of instant (stable), once per id. */
const defer = (record: UserRecord, event: ResolvedEvent): Step => {
  const pending = record.pending ?? [];
  if (pending.some((waiting) => waiting.id === event.id))
    return {
      record,
      outcome: {
        eventId: event.id,
        status: ApplyStatuses.duplicate,
        changedTeams: [],
        reason: 'the event is already pending',
      },
    };
  if (pending.length >= maxPendingEvents)
    throw new PendingLimitError(
      record.userId,
      event.id,
      `already has ${maxPendingEvents} future-effective events pending`,
    );
  const bytes = pendingBytesOf(pending) + pendingBytesOf([event]);
  if (bytes > maxPendingBytes)
    throw new PendingLimitError(
      record.userId,
      event.id,
      `would have ${bytes} bytes of future-effective events pending, more than ${maxPendingBytes}`,
    );
  const at = instant(factTime(event));
  const index = pending.findIndex((waiting) => instant(factTime(waiting)) > at);
  const next =
    index === -1 ? [...pending, event] : [...pending.slice(0, index), event, ...pending.slice(index)];
  return {
    record: withPending(record, next),
    outcome: {
      eventId: event.id,
      status: ApplyStatuses.deferred,
      changedTeams: [],
      reason: `effective at ${factTime(event)}: pending until then`,
    },
  };
};

/**
 * Applies one event to a user's record (`undefined` = never seen). Returns the new record (the
 * same object when nothing changed) and what happened. The version is left as it was.
 * With `now`, an event whose `effectiveAt` is after it is kept pending (`deferred`) instead; a fact the
 * tombstone already decides is never kept. Without `now`, every event applies at once (its
 * instant is still `factTime`). Throws `PendingLimitError` when the pending list is full.
 *
 * @example
 * const { record, outcome } = applyEvent(stored, resolvedEvent, new Date());
 * if (outcome.status === 'applied' || outcome.status === 'deferred') await save(record);
 */
const applyEvent = (record: UserRecord | undefined, event: ResolvedEvent, now?: Date): Step => {
  const current = record ?? emptyRecord(event);
  const decided = decidedByTombstone(current, event);
  if (decided !== undefined) return { record: current, outcome: decided };
  // Only an explicit `effectiveAt` waits: an `occurredAt` a little ahead of our clock is skew, not a plan.
  if (now !== undefined && event.effectiveAt !== undefined && instant(event.effectiveAt) > now.getTime())
    return defer(current, event);

  switch (event.type) {
    case 'user.offboarded':
      return applyOffboarding(current, event);
    case 'membership.added':
      return applyFacts(current, event, [
        {
          team: event.team,
          member: true,
          ...(event.expiresAt === undefined ? {} : { expiresAt: event.expiresAt }),
        },
      ]);
    case 'membership.removed':
      return applyFacts(current, event, [{ team: event.team, member: false }]);
    case 'user.teams': {
      const listed = new Set(event.teams);
      const facts = [
        ...event.teams.map((team) => ({ team, member: true })),
        ...Object.keys(current.teams)
          .filter((team) => !listed.has(team))
          .map((team) => ({ team, member: false })),
      ];
      return applyFacts(current, event, facts);
    }
  }
};

/** The member fact that expires first at or before `now` (ties: team name), if any. */
const firstExpiry = (
  record: UserRecord,
  now: number,
): { team: string; fact: TeamFact; at: number } | undefined => {
  let first: { team: string; fact: TeamFact; at: number } | undefined;
  for (const [team, fact] of Object.entries(record.teams)) {
    if (!fact.member || fact.expiresAt === undefined) continue;
    const at = instant(fact.expiresAt);
    if (at > now) continue;
    if (first === undefined || at < first.at || (at === first.at && team < first.team))
      first = { team, fact, at };
  }
  return first;
};

/** The pending event due first at or before `now` (ties: the one kept first), if any. */
const firstDue = (
  record: UserRecord,
  now: number,
): { index: number; event: ResolvedEvent; at: number } | undefined => {
  let first: { index: number; event: ResolvedEvent; at: number } | undefined;
  for (const [index, event] of (record.pending ?? []).entries()) {
    const at = instant(factTime(event));
    if (at <= now && (first === undefined || at < first.at)) first = { index, event, at };
  }
  return first;
};

/** A membership ends at its expiry, never before the join it belongs to (an expiry that precedes it). */
const expire = (record: UserRecord, team: string, fact: TeamFact, expiresAt: string): Step => {
  const at = instant(expiresAt) >= instant(fact.at) ? expiresAt : fact.at;
  return {
    record: { ...record, teams: { ...record.teams, [team]: { member: false, at, eventId: fact.eventId } } },
    outcome: {
      eventId: fact.eventId,
      status: ApplyStatuses.applied,
      changedTeams: [team],
      reason: `membership of team ${team} expired at ${expiresAt}`,
      expired: { team, at: expiresAt },
    },
  };
};

/**
 * Brings a record up to `now`: applies the pending events that are due and ends the memberships
 * that expired, in order of instant (an expiry before an event of the same instant), each as if
 * it happened at its own instant. Returns the same record and no outcomes when nothing was due;
 * any outcome means the record changed and must be written.
 *
 * @example
 * const { record: settled, outcomes } = settleRecord(stored, new Date());
 * if (outcomes.length > 0) await save(settled);
 */
const settleRecord = (record: UserRecord, now: Date): { record: UserRecord; outcomes: ApplyOutcome[] } => {
  const nowMs = now.getTime();
  let current = record;
  const outcomes: ApplyOutcome[] = [];
  // Each step removes a pending event (which may add one expiry) or ends one expiry: it terminates.
  for (;;) {
    const expiry = firstExpiry(current, nowMs);
    const due = firstDue(current, nowMs);
    if (expiry === undefined && due === undefined) break;
    let step: Step;
    if (expiry !== undefined && (due === undefined || expiry.at <= due.at)) {
      step = expire(current, expiry.team, expiry.fact, expiry.fact.expiresAt as string);
    } else {
      const { index, event } = due as { index: number; event: ResolvedEvent };
      const rest = (current.pending ?? []).filter((_, i) => i !== index);
      step = applyEvent(withPending(current, rest), event);
    }
    current = step.record;
    outcomes.push(step.outcome);
  }
  return { record: current, outcomes };
};

/**
 * True when settling the record at `now` would change it: a pending event is due, or a
 * membership has expired. The reconcile run calls `store.applyDue` for such records.
 *
 * @example for await (const r of store.list()) if (needsSettling(r, now)) await store.applyDue(r.userId, now);
 */
const needsSettling = (record: UserRecord, now: Date): boolean =>
  firstExpiry(record, now.getTime()) !== undefined || firstDue(record, now.getTime()) !== undefined;

/**
 * The next instant at which the record changes by itself (a pending event or an expiry), if any.
 *
 * @example nextChangeAt(record) // '2026-11-30T17:00:00Z'
 */
const nextChangeAt = (record: UserRecord): string | undefined => {
  const candidates = [
    ...(record.pending ?? []).map(factTime),
    ...Object.values(record.teams)
      .filter((fact) => fact.member && fact.expiresAt !== undefined)
      .map((fact) => fact.expiresAt as string),
  ];
  return candidates.reduce<string | undefined>(
    (first, time) => (first === undefined || instant(time) < instant(first) ? time : first),
    undefined,
  );
};

/**
 * The teams the user is a member of (at `now`, when given: expired memberships are not), sorted.
 *
 * @example activeTeams(record, new Date()) // ['backend', 'platform']
 */
const activeTeams = (record: UserRecord, now?: Date): string[] =>
  Object.entries(record.teams)
    .filter(([, fact]) => isMemberAt(fact, now))
    .map(([team]) => team)
    .sort();

/**
 * True when the user left the company and was not rehired into any team since.
 *
 * @example if (isOffboarded(record, new Date())) revokeEverything(record.userId);
 */
const isOffboarded = (record: UserRecord, now?: Date): boolean =>
  record.offboardedAt !== undefined && activeTeams(record, now).length === 0;

export {
  activeTeams,
  applyEvent,
  factTime,
  instant,
  isMemberAt,
  isOffboarded,
  leftWatermark,
  maxPendingBytes,
  maxPendingEvents,
  needsSettling,
  nextChangeAt,
  PendingLimitError,
  pendingBytesOf,
  settleRecord,
};

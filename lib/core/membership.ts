/**
 * The membership reducer: what one event does to what the service knows of a user (design.md,
 * "Order and staleness"). Pure: no I/O, no clock; the store bumps the version.
 *
 * Every fact carries the instant it happened, and each team keeps the instant of its last fact,
 * so events may arrive in any order and twice and still end in the same record:
 * - an older fact than the stored one is stale; the same fact again is a duplicate;
 * - a join and a removal at the same instant: the removal wins (the safer answer);
 * - the offboarding tombstone beats every fact up to its instant; a later join (rehire) counts.
 */
import {
  type ApplyOutcome,
  type ApplyStatus,
  ApplyStatuses,
  type ResolvedEvent,
  type TeamFact,
  type UserRecord,
} from '../domain.ts';

type Verdict = typeof ApplyStatuses.applied | typeof ApplyStatuses.duplicate | typeof ApplyStatuses.stale;

/** Instants, not strings: `10:00:00Z` and `11:00:00+01:00` are the same time. */
const instant = (iso: string): number => Date.parse(iso);

/**
 * The fact that stands for a team. A team the record does not hold was left at the last
 * snapshot, if any. Team names are data: `constructor` or `toString` never read as stored.
 */
const factOf = (record: UserRecord, team: string): TeamFact | undefined => {
  if (Object.hasOwn(record.teams, team)) return record.teams[team];
  return record.snapshotAt === undefined ? undefined : { member: false, at: record.snapshotAt, eventId: '' };
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

/** Applies per-team facts (all at one instant) and sums them up into one outcome. */
const applyFacts = (
  record: UserRecord,
  event: ResolvedEvent,
  facts: ReadonlyArray<{ team: string; member: boolean }>,
): { record: UserRecord; outcome: ApplyOutcome } => {
  const at = instant(event.occurredAt);
  const teams = { ...record.teams };
  const changedTeams: string[] = [];
  const verdicts = new Set<Verdict>();
  // A newer snapshot moves the watermark even when no stored team changes (e.g. an empty list).
  const snapshotMoves =
    event.type === 'user.teams' && (record.snapshotAt === undefined || at > instant(record.snapshotAt));
  if (snapshotMoves) verdicts.add(ApplyStatuses.applied);
  else if (event.type === 'user.teams' && record.snapshotAt !== undefined && at < instant(record.snapshotAt))
    verdicts.add(ApplyStatuses.stale);
  for (const { team, member } of facts) {
    const verdict = judge(factOf(record, team), member, at);
    verdicts.add(verdict);
    if (verdict !== ApplyStatuses.applied) continue;
    teams[team] = { member, at: event.occurredAt, eventId: event.id };
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
      userName: event.user.name,
      teams,
      ...(snapshotMoves ? { snapshotAt: event.occurredAt } : {}),
    },
    outcome: { eventId: event.id, status, changedTeams: changedTeams.sort() },
  };
};

const applyOffboarding = (
  record: UserRecord,
  event: ResolvedEvent,
): { record: UserRecord; outcome: ApplyOutcome } => {
  const at = instant(event.occurredAt);
  if (record.offboardedAt !== undefined && at <= instant(record.offboardedAt)) {
    const status: ApplyStatus =
      at === instant(record.offboardedAt) ? ApplyStatuses.duplicate : ApplyStatuses.stale;
    return {
      record,
      outcome: {
        eventId: event.id,
        status,
        changedTeams: [],
        reason: `the user is already offboarded at ${record.offboardedAt}`,
      },
    };
  }
  const teams = { ...record.teams };
  const changedTeams: string[] = [];
  for (const [team, fact] of Object.entries(record.teams)) {
    // The same verdict a removal at the offboarding instant gets: later facts (a rehire) stay.
    if (judge(fact, false, at) !== ApplyStatuses.applied) continue;
    teams[team] = { member: false, at: event.occurredAt, eventId: event.id };
    changedTeams.push(team);
  }
  return {
    record: { ...record, userName: event.user.name, teams, offboardedAt: event.occurredAt },
    outcome: { eventId: event.id, status: ApplyStatuses.applied, changedTeams: changedTeams.sort() },
  };
};

/**
 * Applies one event to a user's record (`undefined` = never seen). Returns the new record (the
 * same object when nothing changed) and what happened. The version is left as it was.
 *
 * @example
 * const { record, outcome } = applyEvent(stored, resolvedEvent);
 * if (outcome.status === 'applied') await save(record);
 */
const applyEvent = (
  record: UserRecord | undefined,
  event: ResolvedEvent,
): { record: UserRecord; outcome: ApplyOutcome } => {
  const current = record ?? emptyRecord(event);
  if (event.type === 'user.offboarded') return applyOffboarding(current, event);

  if (current.offboardedAt !== undefined && instant(event.occurredAt) <= instant(current.offboardedAt))
    return {
      record: current,
      outcome: {
        eventId: event.id,
        status: ApplyStatuses.supersededByOffboarding,
        changedTeams: [],
        reason: `the fact is not newer than the offboarding at ${current.offboardedAt}`,
      },
    };

  switch (event.type) {
    case 'membership.added':
      return applyFacts(current, event, [{ team: event.team, member: true }]);
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

/**
 * The teams the user is a member of now, sorted.
 *
 * @example activeTeams(record) // ['backend', 'platform']
 */
const activeTeams = (record: UserRecord): string[] =>
  Object.entries(record.teams)
    .filter(([, fact]) => fact.member)
    .map(([team]) => team)
    .sort();

/**
 * True when the user left the company and was not rehired into any team since.
 *
 * @example if (isOffboarded(record)) revokeEverything(record.userId);
 */
const isOffboarded = (record: UserRecord): boolean =>
  record.offboardedAt !== undefined && activeTeams(record).length === 0;

export { activeTeams, applyEvent, isOffboarded };

/**
 * A deliberately simple reference model of what SWR must hold once a set of people events has
 * been processed, written from design.md alone: it shares no code with the production reducer,
 * desired-state or planner modules, so the property test compares two independent readings of
 * the same rules.
 *
 * The rules, as the model states them:
 * - events are de-duplicated by id (the first copy counts);
 * - per user and team, the fact with the latest `occurredAt` instant wins; at the same instant
 *   a removal beats a join;
 * - a `user.teams` snapshot at T is a fact for every team: member if listed, removed if not;
 * - `user.offboarded` at T hides every fact of that user at or before T (so every team whose
 *   fact is that old is left); a fact after T (a rehire) counts;
 * - the desired level on a target is the highest level any current team gets there;
 * - protected users keep whatever they hold.
 */
import type { AuthLevel } from '../../lib/domain.ts';

/** One event, with the user already known by id (the model has no directory). */
type ModelEvent =
  | { id: string; type: 'membership.added'; userId: string; occurredAt: string; team: string }
  | { id: string; type: 'membership.removed'; userId: string; occurredAt: string; team: string }
  | { id: string; type: 'user.offboarded'; userId: string; occurredAt: string }
  | { id: string; type: 'user.teams'; userId: string; occurredAt: string; teams: string[] };

/**
 * The policy in its plainest form: team → target key → level. A key with a `/` is a repository
 * (`namespace/repository`), one without is a namespace.
 */
interface ModelPolicy {
  teams: Record<string, Record<string, AuthLevel>>;
  protectedUsers: readonly string[];
}

/** Who holds what, by target key then user id (the shape of the simulator's snapshot). */
interface Permissions {
  repos: Record<string, Record<string, AuthLevel>>;
  namespaces: Record<string, Record<string, AuthLevel>>;
}

interface ModelInput {
  policy: ModelPolicy;
  /** What SWR held before the first event. */
  initial: Permissions;
  events: readonly ModelEvent[];
}

interface Fact {
  at: number;
  member: boolean;
}

const isRepositoryKey = (key: string): boolean => key.includes('/');

/** Every target key the policy names. */
const policyTargetKeys = (policy: ModelPolicy): string[] => [
  ...new Set(Object.values(policy.teams).flatMap((grants) => Object.keys(grants))),
];

/** Keeps only the given targets; a target absent from `permissions` shows as holding nothing. */
const restrictTo = (permissions: Permissions, keys: readonly string[]): Permissions => {
  const out: Permissions = { repos: {}, namespaces: {} };
  for (const key of keys) {
    const side = isRepositoryKey(key) ? 'repos' : 'namespaces';
    out[side][key] = { ...(permissions[side][key] ?? {}) };
  }
  return out;
};

/** The later fact wins; at the same instant the removal wins. */
const wins = (candidate: Fact, current: Fact | undefined): boolean =>
  current === undefined ||
  candidate.at > current.at ||
  (candidate.at === current.at && !candidate.member && current.member);

/** The teams a user is in once all of their events are known. */
const currentTeamsOf = (events: readonly ModelEvent[], allTeams: readonly string[]): Set<string> => {
  const offboardings = events.filter((event) => event.type === 'user.offboarded');
  const hiddenUpTo = Math.max(Number.NEGATIVE_INFINITY, ...offboardings.map((e) => Date.parse(e.occurredAt)));
  const facts = new Map<string, Fact>();
  const consider = (team: string, member: boolean, at: number): void => {
    const fact = { at, member };
    if (wins(fact, facts.get(team))) facts.set(team, fact);
  };
  for (const event of events) {
    const at = Date.parse(event.occurredAt);
    if (at <= hiddenUpTo) continue;
    switch (event.type) {
      case 'membership.added':
        consider(event.team, true, at);
        break;
      case 'membership.removed':
        consider(event.team, false, at);
        break;
      case 'user.teams':
        for (const team of allTeams) consider(team, event.teams.includes(team), at);
        break;
      case 'user.offboarded':
        break;
    }
  }
  return new Set([...facts].filter(([, fact]) => fact.member).map(([team]) => team));
};

/**
 * What SWR must hold on the policy's targets after `events`: users the events name get exactly
 * their desired levels; everyone else (and protected users) keeps the initial grants.
 *
 * @example
 * const want = expectedPermissions({ policy, initial: seedPermissions, events });
 * expect(restrictTo(sim.permissions(), policyTargetKeys(policy))).toEqual(want);
 */
const expectedPermissions = (input: ModelInput): Permissions => {
  const { policy } = input;
  const keys = policyTargetKeys(policy);
  const result = restrictTo(input.initial, keys);
  const unique = new Map<string, ModelEvent>();
  for (const event of input.events) if (!unique.has(event.id)) unique.set(event.id, event);
  const events = [...unique.values()];
  const allTeams = [
    ...new Set([
      ...Object.keys(policy.teams),
      ...events.flatMap((event) =>
        event.type === 'user.teams' ? event.teams : 'team' in event ? [event.team] : [],
      ),
    ]),
  ];
  const protectedUsers = new Set(policy.protectedUsers);
  const userIds = [...new Set(events.map((event) => event.userId))];

  for (const userId of userIds) {
    if (protectedUsers.has(userId)) continue;
    const teams = currentTeamsOf(
      events.filter((event) => event.userId === userId),
      allTeams,
    );
    for (const key of keys) {
      let level: AuthLevel | undefined;
      for (const team of teams) {
        const given = Object.hasOwn(policy.teams, team) ? policy.teams[team]?.[key] : undefined;
        if (given !== undefined && (level === undefined || given > level)) level = given;
      }
      const holders = (isRepositoryKey(key) ? result.repos : result.namespaces)[key] ?? {};
      if (level === undefined) delete holders[userId];
      else holders[userId] = level;
    }
  }
  return result;
};

export type { ModelEvent, ModelInput, ModelPolicy, Permissions };
export { expectedPermissions, policyTargetKeys, restrictTo };

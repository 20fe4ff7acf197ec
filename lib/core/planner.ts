/**
 * The pure batch planner: compares what the policy gives the users of a batch with what SWR
 * reports (GET) and plans the fewest calls that close the gap: per target at most one grant
 * (POST), one change (PATCH) and one revoke (DELETE), each carrying every user that needs it.
 * No I/O; the same input always gives a deep-equal plan.
 */
import type {
  AuthLevel,
  ChangeReason,
  PeopleEventType,
  Plan,
  PlanAction,
  PlannedCall,
  PlannedChange,
  Policy,
  Target,
  TargetAccess,
  UserRecord,
} from '../domain.ts';
import { ChangeReasons, permissionOfLevel, targetKey } from '../domain.ts';
import {
  compareStrings,
  compareTargets,
  desiredLevels,
  grantsOfTeam,
  isTombstoned,
  policyTargets,
} from './desired.ts';
import { userIdRule, userNameRule } from './names.ts';

/** One user of a batch: the record before and after the batch's events, and their messages. */
interface BatchUser {
  userId: string;
  /** The IAM user name: SWR requires `user_name` in POST and PATCH bodies. */
  userName: string;
  before: UserRecord | undefined;
  after: UserRecord;
  messageIds: string[];
  eventIds: string[];
  /** A `user.offboarded` event took effect in the batch: every policy target is checked. */
  offboardingInBatch: boolean;
  /**
   * Check every policy target for this user: a message of theirs is delivered again, or a
   * rehired user is converged in place of their sweep. An earlier attempt may have written on a
   * target the record no longer names (a grant planned before an offboarding or a snapshot, in a
   * round that did not settle: compaction then dropped that team's marker, and a rehire ends the
   * tombstone that made every target checked).
   */
  checkEveryTarget?: boolean;
  /** The type of each event of `eventIds`, for the reason of a change. */
  eventTypes?: Readonly<Record<string, PeopleEventType>>;
  /** Teams whose membership ended by expiry in this batch or run (team → `expiresAt`). */
  expiredTeams?: Readonly<Record<string, string>>;
  /** A user the service does not know, holding a grant on an exclusive target (reconcile). */
  unknownHolder?: boolean;
  /**
   * Targets to check for this user besides those of the policy (the offboarding sweep's
   * repositories of managed namespaces; reconcile's stale grants). The user's desired level
   * there is what the policy gives, so none for a target the policy does not name.
   */
  extraTargets?: readonly Target[];
}

interface PlanInput {
  users: readonly BatchUser[];
  policy: Policy;
  /** What SWR reports, by `targetKey`. A touched target without an entry could not be read. */
  actual: ReadonlyMap<string, TargetAccess>;
  now: Date;
  /**
   * Only these targets are planned (by `targetKey`): an offboarding revokes its known grants first
   * and sweeps the rest later, a sweep plans one page of repositories at a time. Without a scope,
   * every touched target is planned.
   */
  scope?: ReadonlySet<string>;
}

const uniqueSorted = (values: Iterable<string>): string[] => [...new Set(values)].sort(compareStrings);

/**
 * The caller should hand in each user once; if a user appears twice (two deliveries merged
 * badly), merge them so the plan still has one entry per user: union of messages and events,
 * and the newest record (highest version; ties broken on content so the result is stable).
 */
const mergeUsers = (users: readonly BatchUser[]): BatchUser[] => {
  const byId = new Map<string, BatchUser>();
  for (const user of users) {
    const known = byId.get(user.userId);
    if (known === undefined) {
      byId.set(user.userId, user);
      continue;
    }
    const newer = pickNewer(known, user);
    byId.set(user.userId, {
      ...newer,
      messageIds: uniqueSorted([...known.messageIds, ...user.messageIds]),
      eventIds: uniqueSorted([...known.eventIds, ...user.eventIds]),
      offboardingInBatch: known.offboardingInBatch || user.offboardingInBatch,
      ...(known.checkEveryTarget === true || user.checkEveryTarget === true
        ? { checkEveryTarget: true }
        : {}),
      ...mergedExtraTargets(known, user),
      ...(known.eventTypes === undefined && user.eventTypes === undefined
        ? {}
        : { eventTypes: { ...known.eventTypes, ...user.eventTypes } }),
      ...(known.expiredTeams === undefined && user.expiredTeams === undefined
        ? {}
        : { expiredTeams: { ...known.expiredTeams, ...user.expiredTeams } }),
    });
  }
  return [...byId.values()].sort((a, b) => compareStrings(a.userId, b.userId));
};

const mergedExtraTargets = (a: BatchUser, b: BatchUser): Pick<BatchUser, 'extraTargets'> => {
  if (a.extraTargets === undefined && b.extraTargets === undefined) return {};
  const byKey = new Map<string, Target>();
  for (const target of [...(a.extraTargets ?? []), ...(b.extraTargets ?? [])])
    byKey.set(targetKey(target), target);
  return { extraTargets: [...byKey.values()].sort(compareTargets) };
};

const pickNewer = (a: BatchUser, b: BatchUser): BatchUser => {
  if (a.after.version !== b.after.version) return a.after.version > b.after.version ? a : b;
  return compareStrings(JSON.stringify(a), JSON.stringify(b)) >= 0 ? a : b;
};

/** The targets one user's batch must re-check, keyed by `targetKey`. */
/**
 * The targets the store knows the user for: those of every team in the record before or after
 * the batch, member or not (a left team's marker stays in the record so that a retry re-checks
 * its targets; markers an offboarding or a snapshot covers are compacted away, so a message
 * delivered again checks every target: `checkEveryTarget`), and the user's `extraTargets`. An
 * offboarding revokes these first.
 *
 * @example knownTargets(user, policy).has('core/api/server') // true
 */
const knownTargets = (user: BatchUser, policy: Policy): Map<string, Target> => {
  const targets = new Map<string, Target>();
  const teams = new Set([...Object.keys(user.before?.teams ?? {}), ...Object.keys(user.after.teams)]);
  for (const team of teams)
    for (const grant of grantsOfTeam(policy, team)) targets.set(targetKey(grant.target), grant.target);
  for (const target of user.extraTargets ?? []) targets.set(targetKey(target), target);
  return targets;
};

/**
 * The targets a user is converged on before any sweep: the known ones, or every policy target
 * (and the user's `extraTargets`) for a user marked `checkEveryTarget`.
 *
 * @example convergeTargets({ ...user, checkEveryTarget: true }, policy).size // every policy target
 */
const convergeTargets = (user: BatchUser, policy: Policy): Map<string, Target> => {
  if (user.checkEveryTarget !== true) return knownTargets(user, policy);
  const targets = new Map(policyTargets(policy));
  for (const target of user.extraTargets ?? []) targets.set(targetKey(target), target);
  return targets;
};

/** True for a user who must lose everything: offboarded in the batch, or tombstoned. */
const losesEverything = (user: BatchUser, now?: Date): boolean =>
  user.offboardingInBatch || isTombstoned(user.after, now);

const targetsOfUser = (
  user: BatchUser,
  policy: Policy,
  everything: Map<string, Target>,
): Map<string, Target> => {
  if (!losesEverything(user) && user.checkEveryTarget !== true) return knownTargets(user, policy);
  const extra = user.extraTargets ?? [];
  if (extra.length === 0) return everything;
  const targets = new Map(everything);
  for (const target of extra) targets.set(targetKey(target), target);
  return targets;
};

/**
 * Every target the batch must read from SWR before planning: the policy targets of every team
 * present in a user's record before or after the batch (member or not), all policy targets
 * for a user offboarded in the batch, tombstoned or delivered again, and each user's `extraTargets`.
 * Deduplicated, sorted by kind then key.
 *
 * @example
 * const targets = touchedTargets(users, policy);
 * const actual = new Map(await Promise.all(targets.map(async (t) => [targetKey(t), await swr.getAccess(t)] as const)));
 */
const touchedTargets = (users: readonly BatchUser[], policy: Policy): Target[] => {
  const everything = policyTargets(policy);
  const touched = new Map<string, Target>();
  for (const user of users)
    for (const [key, target] of targetsOfUser(user, policy, everything)) touched.set(key, target);
  return [...touched.values()].sort(compareTargets);
};

/** Grants before changes before revokes: a user moving between teams is never left with nothing. */
const actionOrder: readonly PlanAction[] = ['grant', 'change', 'revoke'];

const actionFor = (before: AuthLevel | undefined, after: AuthLevel | undefined): PlanAction | undefined => {
  if (before === after) return undefined;
  if (before === undefined) return 'grant';
  return after === undefined ? 'revoke' : 'change';
};

const callFor = (target: Target, action: PlanAction, changes: PlannedChange[]): PlannedCall => {
  const messageIds = uniqueSorted(changes.flatMap((change) => change.messageIds));
  if (action === 'revoke')
    return { action, target, userIds: changes.map((change) => change.userId), messageIds, changes };
  const users = changes.map((change) => ({
    user_id: change.userId,
    user_name: change.userName,
    // A grant or change always has a level to go to (see actionFor).
    auth: change.after as AuthLevel,
  }));
  return { action, target, users, messageIds, changes };
};

const describeEvents = (user: BatchUser): string =>
  uniqueSorted(user.eventIds)
    .map((id) => `${id} (${user.eventTypes?.[id] ?? 'event'})`)
    .join(', ');

const teamGives = (policy: Policy, team: string, key: string): boolean =>
  grantsOfTeam(policy, team).some((grant) => targetKey(grant.target) === key);

/** Teams giving `key` whose membership ended by expiry: settled in this run, or due but unsettled. */
const expiriesOn = (user: BatchUser, policy: Policy, key: string, now: Date): Array<[string, string]> => {
  const ended = new Map(Object.entries(user.expiredTeams ?? {}));
  for (const [team, fact] of Object.entries(user.after.teams))
    if (fact.member && fact.expiresAt !== undefined && Date.parse(fact.expiresAt) <= now.getTime())
      ended.set(team, fact.expiresAt);
  return [...ended].filter(([team]) => teamGives(policy, team, key)).sort(([a], [b]) => compareStrings(a, b));
};

const levelName = (level: AuthLevel | undefined): string =>
  level === undefined ? 'none' : permissionOfLevel(level);

/**
 * Why the planner moves `user` on the target `key` from `before` to `after`: the most specific
 * cause first (a stranger on an exclusive target, an offboarding, an expiry), then the batch's
 * events, then what only a repair run sees (a grant no team gives, drift).
 */
const reasonOf = (
  user: BatchUser,
  key: string,
  before: AuthLevel | undefined,
  after: AuthLevel | undefined,
  policy: Policy,
  now: Date,
): ChangeReason => {
  if (user.unknownHolder === true)
    return {
      kind: ChangeReasons.exclusive,
      detail: 'a grant made by hand on an exclusive target, to a user the service does not know',
    };
  if (isTombstoned(user.after, now))
    return { kind: ChangeReasons.offboarding, detail: `offboarded at ${user.after.offboardedAt}` };
  const lowering = after === undefined || (before !== undefined && after < before);
  const expired = lowering ? expiriesOn(user, policy, key, now) : [];
  if (expired.length > 0)
    return {
      kind: ChangeReasons.expiry,
      detail: expired.map(([team, at]) => `membership of team ${team} expired at ${at}`).join('; '),
    };
  if (user.eventIds.length > 0) return { kind: ChangeReasons.events, detail: describeEvents(user) };
  if (lowering && !Object.keys(user.after.teams).some((team) => teamGives(policy, team, key)))
    return {
      kind: ChangeReasons.notInPolicy,
      detail: `no team of the user gives this target in the policy (SWR had ${levelName(before)})`,
    };
  return {
    kind: ChangeReasons.drift,
    detail: `the user's teams give ${levelName(after)} here; SWR had ${levelName(before)}`,
  };
};

/** The SWR rule an entry of this action would break, so that SWR would refuse the whole call. */
const entryRule = (user: BatchUser, action: PlanAction): string | undefined =>
  userIdRule(user.userId) ?? (action === 'revoke' ? undefined : userNameRule(user.userName));

/**
 * Plans the SWR calls for one batch. Per touched target that SWR could be read for, each user
 * of the batch who touches it is compared with SWR's answer: absent but desired → grant,
 * present at another level → change, present and not desired → revoke. Protected users, the
 * caller itself and users no message of the batch names are never in a call. A target without
 * an `actual` entry is listed in `skipped`, and the messages that needed it in `blocked`. A user
 * whose id or name SWR would refuse is left out of the call (`rejected`) so the others go ahead.
 * With a `scope`, only the targets in it are planned.
 *
 * @example
 * const p = plan({ users, policy, actual, now: new Date() });
 * // p.calls[0] = { action: 'grant', target, users: [{ user_id, user_name, auth: 3 }], messageIds, changes }
 */
const plan = (input: PlanInput): Plan => {
  const { policy, actual, now } = input;
  const users = mergeUsers(input.users);
  const protectedUsers = new Set(policy.protectedUsers);
  const everything = policyTargets(policy);
  const calls: PlannedCall[] = [];
  const skipped: Target[] = [];
  const blocked = new Map<string, Target[]>();
  const rejected: Plan['rejected'] = [];

  const considered = users
    .filter((user) => !protectedUsers.has(user.userId))
    .map((user) => ({
      user,
      targets: targetsOfUser(user, policy, everything),
      // Expired memberships give nothing, even in a record not yet settled.
      desired: desiredLevels(user.after, policy, now),
    }));

  for (const target of touchedTargets(users, policy)) {
    const key = targetKey(target);
    if (input.scope !== undefined && !input.scope.has(key)) continue;
    const needing = considered.filter(({ targets }) => targets.has(key));
    const access = actual.get(key);
    if (access === undefined) {
      skipped.push(target);
      for (const messageId of needing.flatMap(({ user }) => user.messageIds))
        blocked.set(messageId, [...(blocked.get(messageId) ?? []), target]);
      continue;
    }
    const byAction = new Map<PlanAction, PlannedChange[]>();
    for (const { user, desired } of needing) {
      if (user.userId === access.selfUserId) continue;
      const before = access.users.find((entry) => entry.user_id === user.userId)?.auth;
      const after = desired.get(key);
      const action = actionFor(before, after);
      if (action === undefined) continue;
      const rule = entryRule(user, action);
      if (rule !== undefined) {
        rejected.push({ userId: user.userId, target, messageIds: uniqueSorted(user.messageIds), rule });
        continue;
      }
      const change: PlannedChange = {
        reason: reasonOf(user, key, before, after, policy, now),
        target,
        action,
        userId: user.userId,
        userName: user.userName,
        before,
        after,
        eventIds: uniqueSorted(user.eventIds),
        messageIds: uniqueSorted(user.messageIds),
      };
      byAction.set(action, [...(byAction.get(action) ?? []), change]);
    }
    for (const action of actionOrder) {
      const changes = byAction.get(action);
      if (changes !== undefined) calls.push(callFor(target, action, changes));
    }
  }

  return {
    createdAt: now.toISOString(),
    messageIds: uniqueSorted(users.flatMap((user) => user.messageIds)),
    calls,
    skipped,
    blocked: [...blocked.entries()]
      .sort(([a], [b]) => compareStrings(a, b))
      .map(([messageId, targets]) => ({ messageId, targets })),
    rejected,
  };
};

/**
 * The same call restricted to some of its changes (the executor splits a call SWR refused because
 * of one entry).
 *
 * @example const [left, right] = [subCall(call, call.changes.slice(0, 2)), subCall(call, call.changes.slice(2))];
 */
const subCall = (call: PlannedCall, changes: readonly PlannedChange[]): PlannedCall =>
  callFor(call.target, call.action, [...changes]);

export type { BatchUser, PlanInput };
export { convergeTargets, knownTargets, losesEverything, plan, subCall, touchedTargets };

/**
 * What the policy gives a user, and which targets a batch must look at. Pure functions over
 * plain data: the planner builds on them, and the reconcile job can reuse them.
 */
import type { AuthLevel, Policy, PolicyGrant, Target, UserRecord } from '../domain.ts';
import { targetKey } from '../domain.ts';
import { isMemberAt } from './membership.ts';

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Orders targets by kind, then key: the order of every list the planner returns. Plain code
 * unit comparison (not `localeCompare`) so the order does not depend on the runtime's locale.
 */
const compareTargets = (a: Target, b: Target): number =>
  compareStrings(a.kind, b.kind) || compareStrings(targetKey(a), targetKey(b));

/** Team names are data (a team may be called `constructor`): read the map by own keys only. */
const grantsOfTeam = (policy: Policy, team: string): readonly PolicyGrant[] =>
  Object.hasOwn(policy.teams, team) ? (policy.teams[team] ?? []) : [];

/**
 * The user's teams, sorted. With `now`, a membership whose `expiresAt` is at or before `now` is
 * not current (pass it wherever the time is known; without it the expiry is not looked at).
 *
 * @example currentTeams(record, new Date()) // ['platform', 'sre']
 */
const currentTeams = (record: UserRecord, now?: Date): string[] =>
  Object.entries(record.teams)
    .filter(([, fact]) => isMemberAt(fact, now))
    .map(([team]) => team)
    .sort(compareStrings);

/** A user who left the company and has not been rehired into any (current, with `now`) team since. */
const isTombstoned = (record: UserRecord, now?: Date): boolean =>
  record.offboardedAt !== undefined && currentTeams(record, now).length === 0;

/** Every target the policy names, keyed by `targetKey`. */
const policyTargets = (policy: Policy): Map<string, Target> => {
  const targets = new Map<string, Target>();
  for (const grants of Object.values(policy.teams))
    for (const grant of grants) targets.set(targetKey(grant.target), grant.target);
  return targets;
};

/**
 * The level the policy gives a user on every target: for each target, the highest level any
 * of the user's CURRENT teams gives there (at `now`, when given: expired memberships give
 * nothing). Targets absent from the map are desired at none.
 *
 * @example desiredLevels(record, policy, now).get('core/api/server') // 3 (write)
 */
const desiredLevels = (record: UserRecord, policy: Policy, now?: Date): Map<string, AuthLevel> => {
  const levels = new Map<string, AuthLevel>();
  for (const team of currentTeams(record, now)) {
    for (const grant of grantsOfTeam(policy, team)) {
      const key = targetKey(grant.target);
      const known = levels.get(key);
      if (known === undefined || grant.level > known) levels.set(key, grant.level);
    }
  }
  return levels;
};

export {
  compareStrings,
  compareTargets,
  currentTeams,
  desiredLevels,
  grantsOfTeam,
  isTombstoned,
  policyTargets,
};

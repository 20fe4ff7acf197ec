/**
 * The BASELINE the benchmarks compare with: how a naive sync (or the Terraform provider's
 * delete-then-add) would do it. For each event, for each target the user's old or new teams name,
 * DELETE the user, then POST the user's new level if the policy still gives one: one call per user
 * and target, no reading first, no batching of users. It keeps the user's teams in memory and
 * trusts event order (no staleness rules, no store). Targets of one event run with the same
 * concurrency as ours, so any gap in time comes from the calls, not from a handicap.
 */
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { desiredLevels } from '../lib/core/desired.ts';
import { parseEventBody } from '../lib/core/events.ts';
import type {
  AuthLevel,
  PeopleEvent,
  Policy,
  SwrPermissionsPort,
  Target,
  UserRecord,
} from '../lib/domain.ts';
import { targetKey } from '../lib/domain.ts';
import { ErrorCodes, SyncError } from '../lib/errors.ts';
import { mapLimit } from '../lib/pool.ts';

interface NaiveSyncDeps {
  /** The client `apply` uses when it is not given one. */
  swr?: SwrPermissionsPort;
  policy: Policy;
  /** SWR calls in flight at once across the targets of one event. */
  concurrency: number;
  /** Teams of each user at the start (what the seed's grants reflect). */
  initialTeams?: ReadonlyMap<string, readonly string[]>;
}

interface NaiveSync {
  /**
   * Applies one event: DELETE then POST on every target its user's old or new teams name, through
   * `swr` (default: the one it was built with; a function instance passes its own client).
   */
  apply(event: PeopleEvent, swr?: SwrPermissionsPort): Promise<void>;
  teamsOf(userId: string): string[];
}

/** A user's teams as a record, so `desiredLevels` (the same rule ours uses) gives the levels. */
const recordOf = (userId: string, userName: string, teams: readonly string[]): UserRecord => ({
  userId,
  userName,
  teams: Object.fromEntries(
    teams.map((team) => [team, { member: true, at: '1970-01-01T00:00:00Z', eventId: '' }]),
  ),
  version: 0,
});

/**
 * @example
 * const naive = createNaiveSync({ swr, policy, concurrency: 8, initialTeams });
 * for (const event of events) await naive.apply(event);
 */
const createNaiveSync = (deps: NaiveSyncDeps): NaiveSync => {
  const teams = new Map<string, string[]>(
    [...(deps.initialTeams ?? [])].map(([id, list]) => [id, [...list]]),
  );
  const protectedUsers = new Set(deps.policy.protectedUsers);

  const teamTargets = (names: readonly string[]): Map<string, Target> => {
    const found = new Map<string, Target>();
    for (const team of names)
      for (const grant of Object.hasOwn(deps.policy.teams, team) ? (deps.policy.teams[team] ?? []) : [])
        found.set(targetKey(grant.target), grant.target);
    return found;
  };

  const apply = async (event: PeopleEvent, given?: SwrPermissionsPort): Promise<void> => {
    const swr = given ?? deps.swr;
    if (swr === undefined) throw new Error('the naive baseline needs an SWR client');
    const { id, name } = event.user;
    if (id === undefined || name === undefined)
      throw new SyncError('the naive baseline needs the user id and name in the event', {
        code: ErrorCodes.unknownUser,
        retryable: false,
      });
    if (protectedUsers.has(id)) return;
    const before = teams.get(id) ?? [];
    const after =
      event.type === 'membership.added'
        ? [...new Set([...before, event.team])]
        : event.type === 'membership.removed'
          ? before.filter((team) => team !== event.team)
          : event.type === 'user.teams'
            ? [...event.teams]
            : [];
    teams.set(id, after);
    const affected = teamTargets([...before, ...after]);
    const levels = desiredLevels(recordOf(id, name, after), deps.policy);
    await mapLimit([...affected.values()], deps.concurrency, async (target) => {
      await swr.revoke(target, [id]);
      const level: AuthLevel | undefined = levels.get(targetKey(target));
      if (level !== undefined) await swr.grant(target, [{ user_id: id, user_name: name, auth: level }]);
    });
  };

  return { apply, teamsOf: (userId) => [...(teams.get(userId) ?? [])] };
};

/**
 * The naive baseline as a Lambda SQS handler (for the poller): records one after another; a
 * failed record and every later record of its group are handed back to SQS. `swr`: the client of
 * this instance (the teams it remembers are shared by every instance, as a store would be).
 *
 * @example startPoller({ ..., handler: createNaiveSqsHandler(naive, services.swr) });
 */
const createNaiveSqsHandler =
  (naive: NaiveSync, swr?: SwrPermissionsPort) =>
  async (event: SQSEvent, _context: Context): Promise<SQSBatchResponse> => {
    const failedGroups = new Set<string>();
    const batchItemFailures: SQSBatchResponse['batchItemFailures'] = [];
    for (const record of event.Records) {
      const group = record.attributes.MessageGroupId ?? '';
      if (failedGroups.has(group)) {
        batchItemFailures.push({ itemIdentifier: record.messageId });
        continue;
      }
      const parsed = parseEventBody(record.body, new Date());
      try {
        if (!parsed.ok) throw parsed.error;
        await naive.apply(parsed.event, swr);
      } catch {
        failedGroups.add(group);
        batchItemFailures.push({ itemIdentifier: record.messageId });
      }
    }
    return { batchItemFailures };
  };

export type { NaiveSync, NaiveSyncDeps };
export { createNaiveSqsHandler, createNaiveSync };

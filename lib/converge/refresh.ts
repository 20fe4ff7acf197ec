/**
 * The batch's users re-read from the store just before converging (once the converge lease is
 * held): another instance may have recorded newer facts for them while this one waited. The store
 * merges every batch's facts by instant, so converging to the newest record applies those facts
 * too, and the instance that recorded them later finds its targets already right.
 */
import { compareTargets } from '../core/desired.ts';
import { type BatchUser, knownTargets } from '../core/planner.ts';
import type { MembershipStorePort, Policy, Target } from '../domain.ts';
import type { SyncError } from '../errors.ts';
import { mapLimit } from '../pool.ts';
import { asSyncError } from '../read-targets.ts';

interface RefreshResult {
  /** In the order given, those read; a moved user carries the newest record. */
  users: BatchUser[];
  /** Users whose record moved since this batch recorded it. */
  moved: number;
  /** Users whose record could not be re-read (left out: their messages are retried). */
  unread: Map<string, SyncError>;
}

/**
 * A user whose record moved is planned from the newest one, as the converge re-check plans a
 * moved user (`before` = what this batch recorded). The targets of the record before the batch
 * must not be forgotten either (a team the batch's events left, whose marker a later write may
 * have dropped): they are kept as `extraTargets`, where the desired level is what the newest
 * record's teams give, so a left team's grant is revoked.
 */
const movedUser = (user: BatchUser, current: BatchUser['after'], policy: Policy): BatchUser => {
  const extra = new Map<string, Target>(knownTargets(user, policy));
  return {
    ...user,
    before: user.after,
    after: current,
    extraTargets: [...extra.values()].sort(compareTargets),
  };
};

/**
 * A user whose record cannot be re-read is left out, never converged from what may be an old
 * record (another instance may have recorded an offboarding meanwhile): the caller retries them.
 *
 * @example const { users, moved } = await refreshUsers(recorded.users, store, policy, { concurrency: 8, deadline });
 */
const refreshUsers = async (
  users: readonly BatchUser[],
  store: Pick<MembershipStorePort, 'get'>,
  policy: Policy,
  options: { concurrency: number; deadline: number },
): Promise<RefreshResult> => {
  const refreshed: Array<BatchUser | undefined> = [...users];
  const unread = new Map<string, SyncError>();
  let moved = 0;
  await mapLimit(
    users.map((user, index) => ({ user, index })),
    options.concurrency,
    async ({ user, index }) => {
      try {
        const current = await store.get(user.userId, { deadline: options.deadline });
        if (current === undefined || current.version === user.after.version) return;
        refreshed[index] = movedUser(user, current, policy);
        moved += 1;
      } catch (error) {
        refreshed[index] = undefined;
        unread.set(user.userId, asSyncError(error));
      }
    },
  );
  return { users: refreshed.filter((user) => user !== undefined), moved, unread };
};

/**
 * Users another batch recorded and announced, as planner users from their newest records: no
 * message of this batch is theirs (their own batch answers for them, and converges them again),
 * and the facts behind the records are named for the audit trail. A record that cannot be read
 * is left out: it is only a hint.
 *
 * @example const extra = await announcedUsers(ids, store, { concurrency: 8, deadline });
 */
const announcedUsers = async (
  userIds: readonly string[],
  store: Pick<MembershipStorePort, 'get'>,
  options: { concurrency: number; deadline: number },
): Promise<BatchUser[]> => {
  const found: BatchUser[] = [];
  await mapLimit(userIds, options.concurrency, async (userId) => {
    try {
      const record = await store.get(userId, { deadline: options.deadline });
      if (record === undefined) return;
      found.push({
        userId,
        userName: record.userName,
        before: undefined,
        after: record,
        messageIds: [],
        eventIds: [...new Set(Object.values(record.teams).map((fact) => fact.eventId))].sort(),
        offboardingInBatch: false,
      });
    } catch {
      // Left to the batch that recorded the user.
    }
  });
  return found.sort((a, b) => (a.userId < b.userId ? -1 : 1));
};

export type { RefreshResult };
export { announcedUsers, refreshUsers };

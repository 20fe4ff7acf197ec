/**
 * The membership store in memory: same contract as the DynamoDB adapter (versions, no write when
 * nothing changed, copies in and out), for unit tests and the local stack without DynamoDB.
 */
import type { ApplyResult, IamUser, MembershipStorePort, ResolvedEvent, UserRecord } from '../domain.ts';
import { type Reduced, reduceEvents, settleStored } from './reduce.ts';

interface MemoryStoreOptions {
  /** Records present from the start (copied). */
  initial?: readonly UserRecord[];
  /** Clock for `updatedAt`, and `apply`'s `now` when the caller gives none. */
  now?: () => Date;
}

/**
 * @example
 * const store = createMemoryStore();
 * const { before, after, outcomes } = await store.apply(user, events, new Date());
 * await store.applyDue(user.id, new Date()); // pending events now due, expired memberships
 */
const createMemoryStore = (options: MemoryStoreOptions = {}): MembershipStorePort => {
  const { now = () => new Date() } = options;
  const records = new Map<string, UserRecord>();
  for (const record of options.initial ?? []) records.set(record.userId, structuredClone(record));

  const read = (userId: string): UserRecord | undefined => {
    const record = records.get(userId);
    return record === undefined ? undefined : structuredClone(record);
  };

  // Read, reduce and write with no await in between: atomic on the one thread.
  const update = (
    userId: string,
    before: UserRecord | undefined,
    reduced: Reduced,
    outcomes: Reduced['outcomes'],
  ): ApplyResult => {
    const { after, settled, changed } = reduced;
    if (!changed) return { before, after, outcomes, settled, written: false };
    const stored: UserRecord = {
      ...after,
      version: (before?.version ?? 0) + 1,
      updatedAt: now().toISOString(),
    };
    records.set(userId, structuredClone(stored));
    return { before, after: structuredClone(stored), outcomes, settled, written: true };
  };

  return {
    async get(userId) {
      return read(userId);
    },
    async apply(user: IamUser, events: readonly ResolvedEvent[], at: Date = now()): Promise<ApplyResult> {
      const before = read(user.id);
      const reduced = reduceEvents(before, user, events, at);
      return update(user.id, before, reduced, reduced.outcomes);
    },
    async applyDue(userId: string, at: Date): Promise<ApplyResult | undefined> {
      const before = read(userId);
      if (before === undefined) return undefined;
      const reduced = settleStored(before, at);
      return update(userId, before, reduced, reduced.settled);
    },
    async *list() {
      for (const userId of [...records.keys()]) {
        const record = read(userId);
        if (record === undefined) continue;
        yield record;
      }
    },
  };
};

export type { MemoryStoreOptions };
export { createMemoryStore };

/**
 * The membership store in memory: same contract as the DynamoDB adapter (versions, no write when
 * nothing applied, copies in and out), for unit tests and the local stack without DynamoDB.
 */
import type { ApplyResult, IamUser, MembershipStorePort, ResolvedEvent, UserRecord } from '../domain.ts';
import { reduceEvents } from './reduce.ts';

interface MemoryStoreOptions {
  /** Records present from the start (copied). */
  initial?: readonly UserRecord[];
  /** Clock for `updatedAt`. */
  now?: () => Date;
}

/**
 * @example
 * const store = createMemoryStore();
 * const { before, after, outcomes } = await store.apply(user, events);
 */
const createMemoryStore = (options: MemoryStoreOptions = {}): MembershipStorePort => {
  const { now = () => new Date() } = options;
  const records = new Map<string, UserRecord>();
  for (const record of options.initial ?? []) records.set(record.userId, structuredClone(record));

  const read = (userId: string): UserRecord | undefined => {
    const record = records.get(userId);
    return record === undefined ? undefined : structuredClone(record);
  };

  return {
    async get(userId) {
      return read(userId);
    },
    async apply(user: IamUser, events: readonly ResolvedEvent[]): Promise<ApplyResult> {
      // Read, reduce and write with no await in between: atomic on the one thread.
      const before = read(user.id);
      const { after, outcomes, changed } = reduceEvents(before, user, events);
      if (!changed) return { before, after, outcomes, written: false };
      const stored: UserRecord = {
        ...after,
        version: (before?.version ?? 0) + 1,
        updatedAt: now().toISOString(),
      };
      records.set(user.id, structuredClone(stored));
      return { before, after: stored, outcomes, written: true };
    },
    async *list() {
      for (const userId of [...records.keys()]) {
        const record = read(userId);
        if (record !== undefined) yield record;
      }
    },
  };
};

export type { MemoryStoreOptions };
export { createMemoryStore };

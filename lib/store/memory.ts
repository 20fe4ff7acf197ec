/**
 * The membership store in memory: same contract as the DynamoDB adapter (versions, no write when
 * nothing changed, copies in and out, the same item bounds, a deadline already passed refused),
 * for unit tests and the local stack without DynamoDB.
 */
import type {
  ApplyResult,
  CallOptions,
  IamUser,
  MembershipStorePort,
  ResolvedEvent,
  UserRecord,
} from '../domain.ts';
import { ErrorCodes, StoreError } from '../errors.ts';
import type { Log } from '../observability.ts';
import { reportFit } from './bounds.ts';
import { type Reduced, reduceEvents, settleStored } from './reduce.ts';

interface MemoryStoreOptions {
  /** Records present from the start (copied). */
  initial?: readonly UserRecord[];
  /** Clock for `updatedAt`, and `apply`'s `now` when the caller gives none. */
  now?: () => Date;
  /** Where a record trimmed to fit one item is reported. */
  log?: Pick<Log, 'info' | 'warn'>;
  /** Item budget in bytes (bounds.ts; tests pass a small one). */
  itemBudget?: number;
}

/** Memory answers at once; only a deadline already passed, or an aborted caller, can stop it. */
const checkDeadline = (operation: string, options: CallOptions | undefined): void => {
  if (options?.signal?.aborted || (options?.deadline !== undefined && Date.now() >= options.deadline))
    throw new StoreError(`membership store ${operation} was not started: the deadline had passed`, {
      code: ErrorCodes.deadline,
    });
};

/**
 * @example
 * const store = createMemoryStore();
 * const { before, after, outcomes } = await store.apply(user, events, new Date());
 * await store.applyDue(user.id, new Date()); // pending events now due, expired memberships
 */
const createMemoryStore = (options: MemoryStoreOptions = {}): MembershipStorePort => {
  const { now = () => new Date(), log, itemBudget } = options;
  const reduceOptions = itemBudget === undefined ? {} : { budget: itemBudget };
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
    const { after, settled, changed, fit } = reduced;
    if (!changed) return { before, after, outcomes, settled, written: false };
    const stored: UserRecord = {
      ...after,
      version: (before?.version ?? 0) + 1,
      updatedAt: now().toISOString(),
    };
    records.set(userId, structuredClone(stored));
    reportFit(log, userId, fit);
    return {
      before,
      after: structuredClone(stored),
      outcomes,
      settled,
      written: true,
      ...(fit === undefined ? {} : { fit }),
    };
  };

  return {
    async get(userId, callOptions) {
      checkDeadline('read', callOptions);
      return read(userId);
    },
    async apply(
      user: IamUser,
      events: readonly ResolvedEvent[],
      at: Date = now(),
      callOptions?: CallOptions,
    ): Promise<ApplyResult> {
      checkDeadline('write', callOptions);
      const before = read(user.id);
      const reduced = reduceEvents(before, user, events, at, reduceOptions);
      return update(user.id, before, reduced, reduced.outcomes);
    },
    async applyDue(userId: string, at: Date, callOptions?: CallOptions): Promise<ApplyResult | undefined> {
      checkDeadline('write', callOptions);
      const before = read(userId);
      if (before === undefined) return undefined;
      const reduced = settleStored(before, at, reduceOptions);
      return update(userId, before, reduced, reduced.settled);
    },
    async *list(callOptions?: CallOptions) {
      checkDeadline('scan', callOptions);
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

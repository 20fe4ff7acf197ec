/**
 * The membership store as `plan` sees it: reads come from the real store (DynamoDB, or an empty
 * memory store); a write computes the new record exactly as the store would — by handing the
 * user's current record to a scratch memory store, so the reducer is the store's own — and keeps
 * it in an overlay that ends with the run. Nothing reaches the real store.
 */
import type { MembershipStorePort, UserRecord } from '../domain.ts';
import { createMemoryStore } from '../store/index.ts';

/**
 * @example const store = createReadOnlyStore(createDynamoStore({ client, tableName }));
 */
const createReadOnlyStore = (
  base: MembershipStorePort,
  now: () => Date = () => new Date(),
): MembershipStorePort & { written(): UserRecord[] } => {
  const overlay = new Map<string, UserRecord>();

  const get = async (userId: string): Promise<UserRecord | undefined> => {
    const written = overlay.get(userId);
    return written === undefined ? base.get(userId) : structuredClone(written);
  };

  /** A memory store holding only this user's current record: it does the reducing. */
  const scratchFor = async (userId: string): Promise<MembershipStorePort> => {
    const current = await get(userId);
    return createMemoryStore({ initial: current === undefined ? [] : [current], now });
  };

  return {
    get,
    async apply(user, events, ...rest) {
      const scratch = await scratchFor(user.id);
      const result = await scratch.apply(user, events, ...rest);
      if (result.written) overlay.set(user.id, structuredClone(result.after));
      return result;
    },
    async applyDue(userId, ...rest) {
      const scratch = await scratchFor(userId);
      const result = await scratch.applyDue(userId, ...rest);
      if (result?.written) overlay.set(userId, structuredClone(result.after));
      return result;
    },
    async *list() {
      const listed = new Set<string>();
      for await (const record of base.list()) {
        listed.add(record.userId);
        const written = overlay.get(record.userId);
        yield written === undefined ? record : structuredClone(written);
      }
      for (const [userId, record] of overlay) if (!listed.has(userId)) yield structuredClone(record);
    },
    /** What the writes would have stored (tests, reports). */
    written: () => [...overlay.values()].map((record) => structuredClone(record)),
  };
};

export { createReadOnlyStore };

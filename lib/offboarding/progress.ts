/**
 * How far the offboarding sweep of one user got: it survives the delivery that ran out of time,
 * so the next delivery (or the scheduled reconcile) continues where it stopped instead of
 * starting again. Pure helpers; the adapters live in `lib/store/sweep-progress.ts`.
 */
import type { CallOptions } from '../domain.ts';

interface SweepProgress {
  userId: string;
  /** The tombstone this sweep belongs to: a later offboarding (after a rehire) starts afresh. */
  offboardedAt: string;
  /** Every policy target was checked for the user. */
  policyDone: boolean;
  /**
   * Per managed namespace: the last target key checked, in sorted order (`ns` for the namespace
   * itself, then `ns/<repository>`), and whether all of it was checked.
   */
  namespaces: Record<string, { after?: string; done: boolean }>;
  /** Targets checked so far, over every delivery. */
  checked: number;
  startedAt: string;
  updatedAt: string;
  /** When the last target was checked and the user held nothing anywhere: the proof. */
  finishedAt?: string;
}

interface SweepProgressPort {
  get(userId: string, options?: CallOptions): Promise<SweepProgress | undefined>;
  save(progress: SweepProgress, options?: CallOptions): Promise<void>;
}

/**
 * The progress of the sweep for this tombstone: the stored one when it belongs to it, else a new one.
 *
 * @example const progress = progressFor(await port.get(userId), userId, record.offboardedAt, now);
 */
const progressFor = (
  stored: SweepProgress | undefined,
  userId: string,
  offboardedAt: string,
  now: Date,
): SweepProgress =>
  stored !== undefined && stored.offboardedAt === offboardedAt
    ? stored
    : {
        userId,
        offboardedAt,
        policyDone: false,
        namespaces: {},
        checked: 0,
        startedAt: now.toISOString(),
        updatedAt: now.toISOString(),
      };

/** True when the policy targets and every managed namespace were checked. */
const isSwept = (progress: SweepProgress, managedNamespaces: readonly string[]): boolean =>
  progress.policyDone && managedNamespaces.every((ns) => progress.namespaces[ns]?.done === true);

/** Keeps the progress in memory (tests, CLI runs without a table, the local stack's fallback). */
const createMemorySweepProgress = (): SweepProgressPort & { all(): SweepProgress[] } => {
  const byUser = new Map<string, SweepProgress>();
  return {
    async get(userId) {
      const found = byUser.get(userId);
      return found === undefined ? undefined : structuredClone(found);
    },
    async save(progress) {
      byUser.set(progress.userId, structuredClone(progress));
    },
    all: () => [...byUser.values()].map((progress) => structuredClone(progress)),
  };
};

export type { SweepProgress, SweepProgressPort };
export { createMemorySweepProgress, isSwept, progressFor };

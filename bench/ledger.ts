/**
 * Counts our SWR calls by KIND (a read before deciding, a read-back after writing, POST, PATCH,
 * DELETE, a repository listing) and by STAGE of the pipeline (apply: the known targets of the
 * batch's users; sweep: an offboarded user's every other target), so that a figure above its
 * target can be explained. It sits between one function instance's pipeline and its SWR client
 * and counts calls as the pipeline makes them (the simulator counts HTTP attempts, retries
 * included; without faults both agree).
 *
 * - A read is a read-back when the same instance wrote that target (a call that succeeded) since
 *   it last read it: the converge routine reads back every target it wrote, and only those.
 * - The sweep stage starts when the pipeline first asks the sweep-progress port for a user's
 *   cursor: stage 5 (sweep) does so before its first SWR call, stage 4 (apply) never does.
 * - A call that ends in DEADLINE_EXCEEDED (the rate limit's next slot was past the invocation's
 *   deadline, so it was never sent; or it was cut off) is counted apart, as `cut`, not as a call.
 */
import type { SwrPermissionsPort, Target } from '../lib/domain.ts';
import { targetKey } from '../lib/domain.ts';
import { ErrorCodes, SyncError } from '../lib/errors.ts';
import type { SweepProgressPort } from '../lib/offboarding/progress.ts';

const CallKinds = {
  read: 'read',
  readBack: 'readBack',
  post: 'post',
  patch: 'patch',
  delete: 'delete',
  list: 'list',
} as const;
type CallKind = (typeof CallKinds)[keyof typeof CallKinds];

const Stages = { apply: 'apply', sweep: 'sweep' } as const;
type Stage = (typeof Stages)[keyof typeof Stages];

type KindCounts = Record<CallKind, number> & {
  /** Calls that ended in DEADLINE_EXCEEDED: not counted under their kind. */
  cut: number;
};
type LedgerCounts = Record<Stage, KindCounts>;

const emptyKinds = (): KindCounts => ({
  read: 0,
  readBack: 0,
  post: 0,
  patch: 0,
  delete: 0,
  list: 0,
  cut: 0,
});

/** Totals over kinds and stages, as the rows report them. */
interface LedgerTotals {
  reads: number;
  readBacks: number;
  writes: number;
  lists: number;
  /** Every SWR call (reads, read-backs, writes, listings). */
  calls: number;
}

const totalsOf = (counts: LedgerCounts): LedgerTotals => {
  const sum = (pick: (kinds: KindCounts) => number) => pick(counts.apply) + pick(counts.sweep);
  const reads = sum((k) => k.read);
  const readBacks = sum((k) => k.readBack);
  const writes = sum((k) => k.post + k.patch + k.delete);
  const lists = sum((k) => k.list);
  return { reads, readBacks, writes, lists, calls: reads + readBacks + writes + lists };
};

/** The ports of one function instance, counted, and the switch of its batch boundaries. */
interface InstanceTap {
  swr: SwrPermissionsPort;
  sweepProgress: SweepProgressPort;
  /** A new batch starts in stage apply and with nothing written yet. */
  beginBatch(): void;
}

interface CallLedger {
  /**
   * @example const tap = ledger.tap(services.swr, createMemorySweepProgress());
   */
  tap(swr: SwrPermissionsPort, sweepProgress: SweepProgressPort): InstanceTap;
  counts(): LedgerCounts;
}

/**
 * @example
 * const ledger = createCallLedger();
 * const tap = ledger.tap(services.swr, progress);
 * tap.beginBatch(); await processRecords(batch, { ...deps, swr: tap.swr, sweepProgress: tap.sweepProgress }, …);
 * totalsOf(ledger.counts()).calls
 */
const createCallLedger = (): CallLedger => {
  const counts: LedgerCounts = { apply: emptyKinds(), sweep: emptyKinds() };
  return {
    counts: () => ({ apply: { ...counts.apply }, sweep: { ...counts.sweep } }),
    tap(swr, sweepProgress) {
      let stage: Stage = Stages.apply;
      const written = new Set<string>();
      /** Counts a call under its kind, or as cut when it ends in DEADLINE_EXCEEDED. */
      const counted = async <T>(kind: CallKind, call: () => Promise<T>): Promise<T> => {
        const at = counts[stage];
        at[kind] += 1;
        try {
          return await call();
        } catch (error) {
          if (error instanceof SyncError && error.code === ErrorCodes.deadline) {
            at[kind] -= 1;
            at.cut += 1;
          }
          throw error;
        }
      };
      const wrote = async (kind: CallKind, target: Target, call: () => Promise<void>) => {
        await counted(kind, call);
        written.add(targetKey(target));
      };
      return {
        beginBatch() {
          stage = Stages.apply;
          written.clear();
        },
        sweepProgress: {
          get(userId, options) {
            stage = Stages.sweep;
            return sweepProgress.get(userId, options);
          },
          save: (progress, options) => sweepProgress.save(progress, options),
        },
        swr: {
          getAccess(target, options) {
            const key = targetKey(target);
            const kind = written.delete(key) ? CallKinds.readBack : CallKinds.read;
            return counted(kind, () => swr.getAccess(target, options));
          },
          grant: (target, users, options) =>
            wrote(CallKinds.post, target, () => swr.grant(target, users, options)),
          change: (target, users, options) =>
            wrote(CallKinds.patch, target, () => swr.change(target, users, options)),
          revoke: (target, userIds, options) =>
            wrote(CallKinds.delete, target, () => swr.revoke(target, userIds, options)),
          listRepositories: (namespace, options) =>
            counted(CallKinds.list, () => swr.listRepositories(namespace, options)),
        },
      };
    },
  };
};

export type { CallKind, CallLedger, InstanceTap, KindCounts, LedgerCounts, LedgerTotals, Stage };
export { CallKinds, createCallLedger, Stages, totalsOf };

/**
 * The part of `apply` and `applyDue` both adapters share: run the reducer at `now`, then fit the
 * changed record into one DynamoDB item (bounds.ts), so the memory store keeps the same bounds.
 */

import { applyEvent, settleRecord } from '../core/membership.ts';
import {
  type ApplyOutcome,
  ApplyStatuses,
  type IamUser,
  type RecordFit,
  type ResolvedEvent,
  type UserRecord,
} from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';
import { fitRecord } from './bounds.ts';

interface Reduced {
  after: UserRecord;
  /** One per event, in order. */
  outcomes: ApplyOutcome[];
  /** What settling did: due pending events applied, expired memberships ended. */
  settled: ApplyOutcome[];
  /** True when the record changed (an event applied or deferred, or anything settled): only then is it written. */
  changed: boolean;
  /** What fitting the record into one item cost, when it cost anything (see bounds.ts). */
  fit?: RecordFit;
}

/** Options of the reduction: the item budget (tests pass a small one). */
interface ReduceOptions {
  budget?: number;
}

const changes = (outcome: ApplyOutcome): boolean =>
  outcome.status === ApplyStatuses.applied || outcome.status === ApplyStatuses.deferred;

/**
 * Fits a changed record into its item. When that dropped pending events or memberships to keep
 * an offboarding, the outcome of the offboarding says so (`offboardings`: their event ids).
 */
const fitted = (
  before: UserRecord | undefined,
  reduced: Reduced,
  offboardings: ReadonlySet<string>,
  options: ReduceOptions,
): Reduced => {
  if (!reduced.changed) return reduced;
  const { record, fit } = fitRecord(reduced.after, {
    before,
    ...(options.budget === undefined ? {} : { budget: options.budget }),
  });
  if (fit === undefined) return { ...reduced, after: record };
  const lost = [
    ...(fit.droppedPending.length === 0 ? [] : [`pending events ${fit.droppedPending.join(', ')}`]),
    ...(fit.droppedTeams.length === 0 ? [] : [`memberships of ${fit.droppedTeams.join(', ')}`]),
  ];
  if (lost.length === 0) return { ...reduced, after: record, fit };
  const note = `to fit the record in one item, dropped ${lost.join(' and ')}`;
  const annotate = (outcome: ApplyOutcome): ApplyOutcome =>
    outcome.status === ApplyStatuses.applied && offboardings.has(outcome.eventId)
      ? { ...outcome, reason: outcome.reason === undefined ? note : `${outcome.reason}; ${note}` }
      : outcome;
  return {
    ...reduced,
    after: record,
    outcomes: reduced.outcomes.map(annotate),
    settled: reduced.settled.map(annotate),
    fit,
  };
};

const offboardingIds = (...lists: ReadonlyArray<readonly ResolvedEvent[] | undefined>): Set<string> =>
  new Set(lists.flatMap((list) => (list ?? []).filter((e) => e.type === 'user.offboarded').map((e) => e.id)));

/**
 * Settles the record at `now`, applies the events in order (a future one is kept pending), and
 * settles again: an event may arrive with its membership already expired. A changed record is
 * fitted into one item; one that cannot be is a permanent `StoreError` (`STORE_ITEM_TOO_LARGE`).
 *
 * @example
 * const { after, outcomes, settled, changed, fit } = reduceEvents(before, user, events, now);
 */
const reduceEvents = (
  before: UserRecord | undefined,
  user: IamUser,
  events: readonly ResolvedEvent[],
  now: Date,
  options: ReduceOptions = {},
): Reduced => {
  const strangers = events.filter((event) => event.user.id !== user.id);
  if (strangers.length > 0)
    // A caller bug, not a data problem: mixing users would write one user's facts into another's record.
    throw new SyncError(`events ${strangers.map((e) => e.id).join(', ')} are not about user ${user.id}`, {
      code: ErrorCodes.crash,
      retryable: false,
    });
  const first = settleRecord(before ?? { userId: user.id, userName: user.name, teams: {}, version: 0 }, now);
  let after = first.record;
  const outcomes: ApplyOutcome[] = [];
  for (const event of events) {
    const step = applyEvent(after, event, now);
    after = step.record;
    outcomes.push(step.outcome);
  }
  const last = settleRecord(after, now);
  const settled = [...first.outcomes, ...last.outcomes];
  // The name IAM has now (a join resolves it), even when every event was a duplicate: SWR refuses
  // a grant under an old name, and reconcile grants under the stored one.
  const renamed = user.name !== '' && user.name !== last.record.userName;
  const record = renamed ? { ...last.record, userName: user.name } : last.record;
  return fitted(
    before,
    { after: record, outcomes, settled, changed: renamed || settled.length > 0 || outcomes.some(changes) },
    offboardingIds(events, before?.pending, after.pending),
    options,
  );
};

/**
 * `applyDue` for a stored record: settling alone, then fitting.
 *
 * @example const { after, settled, changed } = settleStored(record, now);
 */
const settleStored = (before: UserRecord, now: Date, options: ReduceOptions = {}): Reduced => {
  const { record, outcomes } = settleRecord(before, now);
  return fitted(
    before,
    { after: record, outcomes: [], settled: outcomes, changed: outcomes.length > 0 },
    offboardingIds(before.pending),
    options,
  );
};

export type { Reduced, ReduceOptions };
export { reduceEvents, settleStored };

/** The part of `apply` and `applyDue` both adapters share: run the reducer at `now`. */

import { applyEvent, settleRecord } from '../core/membership.ts';
import {
  type ApplyOutcome,
  ApplyStatuses,
  type IamUser,
  type ResolvedEvent,
  type UserRecord,
} from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';

interface Reduced {
  after: UserRecord;
  /** One per event, in order. */
  outcomes: ApplyOutcome[];
  /** What settling did: due pending events applied, expired memberships ended. */
  settled: ApplyOutcome[];
  /** True when the record changed (an event applied or deferred, or anything settled): only then is it written. */
  changed: boolean;
}

const changes = (outcome: ApplyOutcome): boolean =>
  outcome.status === ApplyStatuses.applied || outcome.status === ApplyStatuses.deferred;

/**
 * Settles the record at `now`, applies the events in order (a future one is kept pending), and
 * settles again: an event may arrive with its membership already expired.
 *
 * @example
 * const { after, outcomes, settled, changed } = reduceEvents(before, user, events, now);
 */
const reduceEvents = (
  before: UserRecord | undefined,
  user: IamUser,
  events: readonly ResolvedEvent[],
  now: Date,
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
  return {
    after: last.record,
    outcomes,
    settled,
    changed: settled.length > 0 || outcomes.some(changes),
  };
};

/**
 * `applyDue` for a stored record: settling alone.
 *
 * @example const { after, settled, changed } = settleStored(record, now);
 */
const settleStored = (before: UserRecord, now: Date): Reduced => {
  const { record, outcomes } = settleRecord(before, now);
  return { after: record, outcomes: [], settled: outcomes, changed: outcomes.length > 0 };
};

export type { Reduced };
export { reduceEvents, settleStored };

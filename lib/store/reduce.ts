/** The part of `apply` both adapters share: run the reducer over a user's events in order. */

import { applyEvent } from '../core/membership.ts';
import type { ApplyOutcome, IamUser, ResolvedEvent, UserRecord } from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';

interface Reduced {
  after: UserRecord;
  outcomes: ApplyOutcome[];
  /** True when at least one event was applied: only then is anything written. */
  changed: boolean;
}

/**
 * @example
 * const { after, outcomes, changed } = reduceEvents(before, user, events);
 */
const reduceEvents = (
  before: UserRecord | undefined,
  user: IamUser,
  events: readonly ResolvedEvent[],
): Reduced => {
  const strangers = events.filter((event) => event.user.id !== user.id);
  if (strangers.length > 0)
    // A caller bug, not a data problem: mixing users would write one user's facts into another's record.
    throw new SyncError(`events ${strangers.map((e) => e.id).join(', ')} are not about user ${user.id}`, {
      code: ErrorCodes.crash,
      retryable: false,
    });
  let after: UserRecord = before ?? { userId: user.id, userName: user.name, teams: {}, version: 0 };
  const outcomes: ApplyOutcome[] = [];
  for (const event of events) {
    const step = applyEvent(after, event);
    after = step.record;
    outcomes.push(step.outcome);
  }
  return { after, outcomes, changed: outcomes.some((outcome) => outcome.status === 'applied') };
};

export { reduceEvents };

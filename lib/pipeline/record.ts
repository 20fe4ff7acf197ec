/**
 * Stage 3: the facts recorded, one atomic store update per user, in delivery order. What the
 * store did with each event is logged (ignored as stale or duplicate, deferred, superseded), and
 * each user becomes a planner user: their record before and after, and their messages.
 */
import type { BatchUser } from '../core/planner.ts';
import type { ApplyResult, IamUser, PeopleEventType, ResolvedEvent } from '../domain.ts';
import { ApplyStatuses } from '../domain.ts';
import { MetricNames } from '../observability.ts';
import { mapLimit } from '../pool.ts';
import { asSyncError } from '../read-targets.ts';
import type { BatchState } from './batch-state.ts';
import type { PipelineDeps, PipelineRecord, PipelineSettings } from './types.ts';

interface UserEntry {
  user: IamUser;
  records: PipelineRecord[];
  events: ResolvedEvent[];
}

interface RecordedBatch {
  users: BatchUser[];
  /** Event id → the producer's `source`, for the audit trail. */
  sources: Map<string, string>;
}

const byUser = (batch: BatchState, resolved: ReadonlyMap<string, ResolvedEvent>): UserEntry[] => {
  const entries = new Map<string, UserEntry>();
  for (const record of batch.pending()) {
    const event = resolved.get(record.messageId) as ResolvedEvent;
    const entry = entries.get(event.user.id) ?? { user: event.user, records: [], events: [] };
    entry.records.push(record);
    entry.events.push(event);
    // The first non-empty name (an id-only removal carries none).
    if (entry.user.name === '' && event.user.name !== '') entry.user = event.user;
    entries.set(event.user.id, entry);
  }
  return [...entries.values()];
};

const logOutcomes = (applied: ApplyResult, deps: PipelineDeps): void => {
  // The record had to be trimmed to stay within the item limit: say what it cost.
  if (applied.fit !== undefined)
    deps.log.warn('user record trimmed to fit the item limit', {
      userId: applied.after.userId,
      ...applied.fit,
    });
  for (const outcome of applied.outcomes) {
    if (outcome.status === ApplyStatuses.applied) continue;
    // A deferred event waits in the store for its effectiveAt; the scheduled run applies it.
    const deferred = outcome.status === ApplyStatuses.deferred;
    deps.metrics.count(deferred ? MetricNames.deferredEvents : MetricNames.staleEvents);
    deps.log.info(deferred ? 'event deferred until it takes effect' : 'event ignored', {
      eventId: outcome.eventId,
      status: outcome.status,
      reason: outcome.reason,
    });
  }
  for (const outcome of applied.settled ?? [])
    deps.log.info('time-bound fact took effect', {
      eventId: outcome.eventId,
      status: outcome.status,
      reason: outcome.reason,
    });
};

const warnUnknownTeams = (events: readonly ResolvedEvent[], deps: PipelineDeps): void => {
  for (const event of events) {
    const teams = event.type === 'user.teams' ? event.teams : 'team' in event ? [event.team] : [];
    for (const team of teams)
      if (!Object.hasOwn(deps.policy.teams, team)) {
        // Recorded all the same: the policy may learn the team later, and reconcile then grants.
        deps.metrics.count(MetricNames.unknownTeams);
        deps.log.warn('team not in the policy; membership recorded, nothing granted', {
          eventId: event.id,
          team,
        });
      }
  }
};

/** The planner's view of one user after the store applied their events. */
const batchUserOf = (entry: UserEntry, applied: ApplyResult): BatchUser => {
  const typeOf = new Map(entry.events.map((event) => [event.id, event.type] as const));
  const eventTypes: Record<string, PeopleEventType> = Object.fromEntries(typeOf);
  const expiredTeams: Record<string, string> = {};
  for (const outcome of applied.settled ?? [])
    if (outcome.expired !== undefined) expiredTeams[outcome.expired.team] = outcome.expired.at;
  return {
    userId: entry.user.id,
    // IAM's current name when an event resolved it, else the one the store knows.
    userName: entry.user.name || applied.after.userName,
    before: applied.before,
    after: applied.after,
    messageIds: entry.records.map((record) => record.messageId),
    eventIds: entry.events.map((event) => event.id),
    eventTypes,
    ...(Object.keys(expiredTeams).length === 0 ? {} : { expiredTeams }),
    // Only an offboarding that took effect: a deferred one (a leave date ahead) changes nothing yet.
    offboardingInBatch: applied.outcomes.some(
      (outcome) =>
        outcome.status === ApplyStatuses.applied && typeOf.get(outcome.eventId) === 'user.offboarded',
    ),
    // An earlier delivery may have written where the record no longer says (see BatchUser).
    ...(entry.records.some((record) => record.receiveCount > 1) ? { checkEveryTarget: true } : {}),
  };
};

/**
 * @example const { users, sources } = await recordStage(batch, resolved, deps, settings, deadline);
 */
const recordStage = async (
  batch: BatchState,
  resolved: ReadonlyMap<string, ResolvedEvent>,
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<RecordedBatch> => {
  const recorded: RecordedBatch = { users: [], sources: new Map() };
  await mapLimit(byUser(batch, resolved), settings.concurrency, async (entry) => {
    try {
      const applied = await deps.store.apply(entry.user, entry.events, deps.now(), { deadline });
      logOutcomes(applied, deps);
      warnUnknownTeams(entry.events, deps);
      for (const event of entry.events)
        if (event.source !== undefined) recorded.sources.set(event.id, event.source);
      recorded.users.push(batchUserOf(entry, applied));
    } catch (error) {
      for (const record of entry.records) batch.fail(record.messageId, asSyncError(error));
    }
  });
  recorded.users.sort((a, b) => (a.userId < b.userId ? -1 : 1));
  return recorded;
};

export type { RecordedBatch };
export { recordStage };

/**
 * The one pipeline behind both queue handlers (and the CLI's `apply`):
 * parse each record → resolve users → update the store → read actual permissions → plan →
 * execute → re-check the store → answer. Every stage works per message: one bad message never
 * fails its batch, and a message that cannot be finished is retried or dead-lettered, never
 * dropped.
 */
import type { SQSBatchResponse } from 'aws-lambda';
import {
  type BatchMessage,
  batchResponse,
  deadLetterNow,
  type MessageOutcome,
} from './core/batch-response.ts';
import { isTombstoned } from './core/desired.ts';
import { parseEventBody, resolveEventUser } from './core/events.ts';
import { type CallResult, execute } from './core/executor.ts';
import { type BatchUser, plan, touchedTargets } from './core/planner.ts';
import type { DeadLetterSender } from './dlq.ts';
import type {
  IamUser,
  MembershipStorePort,
  PeopleEvent,
  Policy,
  ResolvedEvent,
  SwrPermissionsPort,
  UserDirectoryPort,
} from './domain.ts';
import { ErrorCodes, SyncError } from './errors.ts';
import {
  type AuditRecord,
  auditLogAttributes,
  type Log,
  MetricNames,
  type MetricsSink,
} from './observability.ts';
import { mapLimit } from './pool.ts';
import { asSyncError, readTargets } from './read-targets.ts';
import { createSweeper } from './reconcile/sweep.ts';

/** One queue message as the pipeline needs it (from a Lambda SQS record, or a CLI file line). */
interface PipelineRecord extends BatchMessage {
  body: string;
  /** ApproximateReceiveCount: becomes the `attempts` DLQ attribute. */
  receiveCount: number;
}

interface PipelineDeps {
  swr: SwrPermissionsPort;
  directory: UserDirectoryPort;
  store: MembershipStorePort;
  policy: Policy;
  /** Absent (CLI): permanent failures are reported and listed as failures, never dropped. */
  deadLetters: DeadLetterSender | undefined;
  log: Log;
  metrics: MetricsSink;
  /** Keeps audit records durably; a failure here is logged (the change itself is done). */
  audit?: (records: readonly AuditRecord[]) => Promise<void>;
  now: () => Date;
}

interface PipelineSettings {
  /** Who acts, for the audit trail: the function name or CLI command. */
  actor: string;
  concurrency: number;
  dryRun: boolean;
  /** How often a user whose store record moved during the batch is planned again. */
  maxReplans?: number;
  /**
   * The queue's maxReceiveCount. A message still failing on that receive is dead-lettered here,
   * with its reason: SQS's own redrive would move it without one.
   */
  maxReceiveCount?: number;
}

interface MessageFailure {
  messageId: string;
  error: SyncError;
}

interface BatchReport {
  response: SQSBatchResponse;
  applied: string[];
  retried: MessageFailure[];
  deadLettered: MessageFailure[];
  /** Permanent failures that could not be dead-lettered (no DLQ, or the send failed). */
  undeliverable: MessageFailure[];
  changes: AuditRecord[];
}

type MessageState = { kind: 'pending' } | { kind: 'failed'; error: SyncError };

const defaultMaxReplans = 3;

/** Per-message state of one batch, in delivery order. */
class BatchState {
  readonly #states = new Map<string, MessageState>();

  constructor(readonly records: readonly PipelineRecord[]) {
    for (const record of records) this.#states.set(record.messageId, { kind: 'pending' });
  }

  /** Records a failure; a permanent one is kept over a later retryable one (retrying cannot help). */
  fail(messageId: string, error: SyncError): void {
    const state = this.#states.get(messageId);
    if (state?.kind === 'failed' && !state.error.retryable) return;
    this.#states.set(messageId, { kind: 'failed', error });
  }

  /** Marks messages behind a retried one of their FIFO group: they wait for it. */
  holdBehindRetries(): void {
    const held = new Map<string, SyncError>();
    for (const record of this.records) {
      const state = this.#states.get(record.messageId);
      const blocker = record.groupId === undefined ? undefined : held.get(record.groupId);
      if (state?.kind === 'pending' && blocker !== undefined)
        this.fail(
          record.messageId,
          new SyncError(`waits for an earlier message of its group (${blocker.code})`, {
            code: blocker.code,
            retryable: true,
          }),
        );
      const now = this.#states.get(record.messageId);
      if (
        now?.kind === 'failed' &&
        now.error.retryable &&
        record.groupId !== undefined &&
        !held.has(record.groupId)
      )
        held.set(record.groupId, now.error);
    }
  }

  pending(): PipelineRecord[] {
    return this.records.filter((record) => this.#states.get(record.messageId)?.kind === 'pending');
  }

  failAllPending(error: SyncError): void {
    for (const record of this.pending()) this.fail(record.messageId, error);
  }

  outcome(messageId: string): 'applied' | 'permanent' | 'retry' {
    const state = this.#states.get(messageId);
    if (state === undefined || state.kind === 'pending') return 'applied';
    return state.error.retryable ? 'retry' : 'permanent';
  }

  errorOf(messageId: string): SyncError | undefined {
    const state = this.#states.get(messageId);
    return state?.kind === 'failed' ? state.error : undefined;
  }
}

const deadlineError = (): SyncError =>
  new SyncError('stopped before the Lambda deadline; SQS will deliver the message again', {
    code: ErrorCodes.deadline,
    retryable: true,
  });

/** Users with a grant or change done for them: the only ones a concurrent offboarding can race. */
const usersGivenAccess = (calls: readonly CallResult[]): Set<string> => {
  const users = new Set<string>();
  for (const result of calls)
    if (result.outcome === 'done' && result.call.action !== 'revoke')
      for (const change of result.call.changes) users.add(change.userId);
  return users;
};

/**
 * Runs one batch through the pipeline and answers SQS. Never throws for a message's sake; the
 * caller still wraps it so that an unexpected crash lists every message (see `failEverything`).
 *
 * @example
 * const report = await processRecords(records, deps, { actor: 'sync', concurrency: 8, dryRun: false }, deadline);
 * return report.response;
 */
const processRecords = async (
  records: readonly PipelineRecord[],
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<BatchReport> => {
  const state = new BatchState(records);
  const startedAt = deps.now();
  const pastDeadline = () => deps.now().getTime() >= deadline;
  deps.metrics.count(MetricNames.messagesIn, records.length);

  // 1. Parse: each body on its own, so one bad message never fails its batch.
  const parsed = new Map<string, PeopleEvent>();
  for (const record of records) {
    const result = parseEventBody(record.body, startedAt);
    if (result.ok) parsed.set(record.messageId, result.event);
    else state.fail(record.messageId, result.error);
  }

  // 2. Resolve the half of each user that the event did not carry (IAM, cached).
  const resolved = new Map<string, ResolvedEvent>();
  await mapLimit(state.pending(), settings.concurrency, async (record) => {
    try {
      const event = parsed.get(record.messageId) as PeopleEvent;
      resolved.set(record.messageId, await resolveEventUser(event, deps.directory, { deadline }));
    } catch (error) {
      state.fail(record.messageId, asSyncError(error));
    }
  });
  state.holdBehindRetries();

  // 3. Record the facts, one atomic store update per user, in delivery order.
  const byUser = new Map<string, { user: IamUser; records: PipelineRecord[]; events: ResolvedEvent[] }>();
  for (const record of state.pending()) {
    const event = resolved.get(record.messageId) as ResolvedEvent;
    const entry = byUser.get(event.user.id) ?? { user: event.user, records: [], events: [] };
    entry.records.push(record);
    entry.events.push(event);
    byUser.set(event.user.id, entry);
  }
  const sources = new Map<string, string>();
  const batchUsers: BatchUser[] = [];
  await mapLimit([...byUser.values()], settings.concurrency, async (entry) => {
    try {
      const applied = await deps.store.apply(entry.user, entry.events, deps.now());
      for (const outcome of applied.outcomes) {
        if (outcome.status === 'applied') continue;
        // A deferred event waits in the store for its effectiveAt; the scheduled run applies it.
        const deferred = outcome.status === 'deferred';
        deps.metrics.count(deferred ? MetricNames.deferredEvents : MetricNames.staleEvents);
        deps.log.info(deferred ? 'event deferred until it takes effect' : 'event ignored', {
          eventId: outcome.eventId,
          status: outcome.status,
          reason: outcome.reason,
        });
      }
      for (const outcome of applied.settled ?? [])
        deps.log.info('time-bound fact took effect', { eventId: outcome.eventId, status: outcome.status });
      for (const event of entry.events) {
        if (event.source !== undefined) sources.set(event.id, event.source);
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
      batchUsers.push({
        userId: entry.user.id,
        userName: entry.user.name,
        before: applied.before,
        after: applied.after,
        messageIds: entry.records.map((record) => record.messageId),
        eventIds: entry.events.map((event) => event.id),
        offboardingInBatch: entry.events.some((event) => event.type === 'user.offboarded'),
      });
    } catch (error) {
      for (const record of entry.records) state.fail(record.messageId, asSyncError(error));
    }
  });

  // 4–6. Read, plan, execute; then plan again for users whose record moved meanwhile (a
  // concurrent offboarding): no grant of ours may survive it.
  const changes: AuditRecord[] = [];
  let round: BatchUser[] = batchUsers;
  const maxReplans = settings.maxReplans ?? defaultMaxReplans;
  const sweeper = createSweeper({
    swr: deps.swr,
    policy: deps.policy,
    deadline,
    concurrency: settings.concurrency,
  });
  for (let attempt = 0; round.length > 0; attempt += 1) {
    if (pastDeadline()) {
      for (const user of round) for (const id of user.messageIds) state.fail(id, deadlineError());
      break;
    }
    // Offboarding: every repository of the managed namespaces too, not only the policy's.
    const swept = await sweeper.attach(round);
    round = swept.users;
    for (const [userId, error] of swept.failures)
      for (const user of round)
        if (user.userId === userId) for (const id of user.messageIds) state.fail(id, error);
    const targets = touchedTargets(round, deps.policy);
    const { actual, readErrors } = await readTargets(targets, deps.swr, settings.concurrency, deadline);
    const planned = plan({ users: round, policy: deps.policy, actual, now: deps.now() });
    const result = await execute(
      planned,
      { swr: deps.swr, now: () => deps.now().getTime() },
      { concurrency: settings.concurrency, deadline, dryRun: settings.dryRun, readErrors },
    );
    for (const [messageId, outcome] of result.perMessage)
      if (outcome.status !== 'applied') state.fail(messageId, outcome.error);
    for (const call of result.calls) {
      if (call.outcome === 'failed') continue;
      const metric =
        call.call.action === 'grant'
          ? MetricNames.grants
          : call.call.action === 'change'
            ? MetricNames.changes
            : MetricNames.revokes;
      deps.metrics.count(metric, call.call.changes.length);
      for (const change of call.call.changes)
        changes.push({
          at: deps.now().toISOString(),
          actor: settings.actor,
          eventIds: change.eventIds,
          sources: [...new Set(change.eventIds.flatMap((id) => sources.get(id) ?? []))],
          userId: change.userId,
          userName: change.userName,
          target: change.target,
          before: change.before,
          after: change.after,
          dryRun: settings.dryRun,
        });
    }
    if (settings.dryRun) break;

    const recheck = usersGivenAccess(result.calls);
    const moved: BatchUser[] = [];
    await mapLimit(
      round.filter((user) => recheck.has(user.userId)),
      settings.concurrency,
      async (user) => {
        try {
          const current = await deps.store.get(user.userId);
          if (current !== undefined && current.version !== user.after.version)
            moved.push({
              ...user,
              before: user.after,
              after: current,
              offboardingInBatch: user.offboardingInBatch || isTombstoned(current),
            });
        } catch (error) {
          for (const id of user.messageIds) state.fail(id, asSyncError(error));
        }
      },
    );
    if (moved.length === 0) break;
    deps.metrics.count(MetricNames.replans, moved.length);
    deps.log.info('store moved during the batch; planning again', {
      users: moved.map((user) => user.userId),
    });
    if (attempt >= maxReplans) {
      const error = new SyncError('the user kept changing during the batch', {
        code: ErrorCodes.conflict,
        retryable: true,
      });
      for (const user of moved) for (const id of user.messageIds) state.fail(id, error);
      break;
    }
    round = moved.sort((a, b) => (a.userId < b.userId ? -1 : 1));
  }

  for (const change of changes) deps.log.info('access changed', auditLogAttributes(change));
  if (deps.audit !== undefined && changes.length > 0)
    await deps.audit(changes).catch((error: unknown) =>
      deps.log.error('audit records could not be stored; they are in this log', {
        error: asSyncError(error).message,
      }),
    );

  // 7. Answer: dead-letter what cannot succeed, retry what may, keep each group's order.
  const lastReceive = (record: PipelineRecord): boolean =>
    settings.maxReceiveCount !== undefined && record.receiveCount >= settings.maxReceiveCount;
  const outcomes = new Map(
    records.map((record) => {
      const outcome = state.outcome(record.messageId);
      return [record.messageId, outcome === 'retry' && lastReceive(record) ? 'permanent' : outcome] as const;
    }),
  );
  const ready = deadLetterNow(records, outcomes);
  const finalOutcomes = new Map<string, MessageOutcome>();
  const deadLettered: MessageFailure[] = [];
  const undeliverable: MessageFailure[] = [];
  const letters = records
    .filter((record) => ready.has(record.messageId))
    .map((record) => ({ ...record, error: state.errorOf(record.messageId) as SyncError }));
  const sent =
    deps.deadLetters === undefined || letters.length === 0
      ? {
          sent: [] as string[],
          failed: letters.map((letter) => ({ messageId: letter.messageId, reason: 'no DLQ configured' })),
        }
      : await deps.deadLetters.send(letters, deps.now());
  const sentIds = new Set(sent.sent);
  for (const letter of letters) {
    const failure = { messageId: letter.messageId, error: letter.error };
    if (sentIds.has(letter.messageId)) {
      deadLettered.push(failure);
      deps.log.error('message dead-lettered', {
        messageId: letter.messageId,
        errorCode: letter.error.code,
        reason: letter.error.message,
        failedTarget: letter.error.target,
      });
    } else {
      undeliverable.push(failure);
      deps.log.error('permanent failure could not be dead-lettered; it will be retried', {
        messageId: letter.messageId,
        errorCode: letter.error.code,
        reason: sent.failed.find((entry) => entry.messageId === letter.messageId)?.reason,
      });
    }
  }
  const applied: string[] = [];
  const retried: MessageFailure[] = [];
  for (const record of records) {
    const error = state.errorOf(record.messageId);
    if (error === undefined) {
      applied.push(record.messageId);
      finalOutcomes.set(record.messageId, 'applied');
    } else if (sentIds.has(record.messageId)) finalOutcomes.set(record.messageId, 'dead-lettered');
    else {
      // Retryable failures, and permanent ones held behind a retry of their group.
      finalOutcomes.set(record.messageId, 'retry');
      if (!undeliverable.some((failure) => failure.messageId === record.messageId))
        retried.push({ messageId: record.messageId, error });
    }
  }
  for (const failure of retried)
    deps.log.warn('message will be retried', {
      messageId: failure.messageId,
      errorCode: failure.error.code,
      reason: failure.error.message,
    });

  const finishedAt = deps.now().getTime();
  for (const record of records) {
    const event = parsed.get(record.messageId);
    if (event?.type === 'user.offboarded' && finalOutcomes.get(record.messageId) === 'applied')
      deps.metrics.milliseconds(
        MetricNames.offboardingLatency,
        Math.max(0, finishedAt - Date.parse(event.occurredAt)),
      );
  }
  deps.metrics.count(MetricNames.messagesApplied, applied.length);
  deps.metrics.count(MetricNames.messagesRetried, retried.length + undeliverable.length);
  deps.metrics.count(MetricNames.deadLettered, deadLettered.length);
  return {
    response: batchResponse(records, finalOutcomes),
    applied,
    retried,
    deadLettered,
    undeliverable,
    changes,
  };
};

export type { BatchReport, MessageFailure, PipelineDeps, PipelineRecord, PipelineSettings };
export { asSyncError, processRecords };

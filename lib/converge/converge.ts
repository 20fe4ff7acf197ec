/**
 * The one read → plan → execute → verify → re-check loop, used by the queue pipeline, the
 * offboarding sweep and reconcile:
 * 1. read the actual permissions of the targets the users touch (those not read yet);
 * 2. plan from them (pure);
 * 3. execute the calls;
 * 4. verify: read back every target written, and compare with what each change asked for;
 * 5. re-check the store for every user with a call done, grants and revokes alike: a record that
 *    moved meanwhile (a concurrent join, leave or offboarding in another instance) is planned
 *    again, as is a change SWR acknowledged but does not show.
 * Rounds repeat until nothing moved, or `maxReplans` rounds or the deadline are used up.
 * A target that cannot be read is never acted on (the planner leaves it out and blocks the
 * messages that needed it).
 */
import { type CallResult, execute, type MessageResult } from '../core/executor.ts';
import { type BatchUser, plan, touchedTargets } from '../core/planner.ts';
import { type Unverified, unverifiedChanges } from '../core/verify.ts';
import type { MembershipStorePort, Plan, Policy, SwrPermissionsPort, TargetAccess } from '../domain.ts';
import { targetKey } from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';
import { mapLimit } from '../pool.ts';
import { asSyncError, readTargets, type TargetReads } from '../read-targets.ts';

interface ConvergeDeps {
  swr: SwrPermissionsPort;
  store: Pick<MembershipStorePort, 'get'>;
  policy: Policy;
  now: () => Date;
}

interface ConvergeOptions {
  concurrency: number;
  /** Absolute epoch ms: no round and no call starts after it. */
  deadline: number;
  /** Plan only: no write, no verification, no re-check. */
  dryRun: boolean;
  /** Rounds after the first (default 3). */
  maxReplans?: number;
  /** Only these targets are planned (by `targetKey`); default: every target the users touch. */
  scope?: ReadonlySet<string>;
  /** Reads already made (reconcile reads every target before listing the store). */
  initial?: TargetReads;
  /**
   * Read again, before the first plan, the targets whose `initial` read failed (default true).
   * False: the client already retried them in this invocation, so the planner skips them and
   * blocks their messages at once (SQS delivers those again) instead of reading them twice.
   */
  rereadInitialFailures?: boolean;
  /** Sees the first plan before anything is written; `false` applies nothing (mass-revoke guard). */
  approve?: (first: Plan) => boolean;
}

interface ConvergeResult {
  /** Every plan, one per round. */
  plans: Plan[];
  /** Every call sent, every round. */
  calls: CallResult[];
  /** Messages that failed (applied ones are absent), the permanent error kept over a retryable one. */
  failures: Map<string, SyncError>;
  /** Changes answered 2xx whose effect the last read-back did not show. */
  unverified: Unverified[];
  /** Users whose record moved or whose store re-read failed, and why they are not settled. */
  unsettled: Map<string, SyncError>;
  /** The latest read of every target (after the last write to it), and why others failed. */
  reads: TargetReads;
  /** Users planned again because their record moved (all rounds). */
  replanned: number;
  /** `approve` refused the first plan: nothing was written. */
  refused: boolean;
}

const defaultMaxReplans = 3;

/** The failures of one message: a permanent error is never replaced by a retryable one. */
const recordFailure = (failures: Map<string, SyncError>, messageId: string, error: SyncError): void => {
  const known = failures.get(messageId);
  if (known === undefined || (known.retryable && !error.retryable)) failures.set(messageId, error);
};

const failUsers = (failures: Map<string, SyncError>, users: readonly BatchUser[], error: SyncError): void => {
  for (const user of users) for (const id of user.messageIds) recordFailure(failures, id, error);
};

const deadlineError = (): SyncError =>
  new SyncError('stopped before the Lambda deadline; SQS will deliver the message again', {
    code: ErrorCodes.deadline,
    retryable: true,
  });

/** Reads the targets of `round` not read yet; merges them into `reads`. */
const readMissing = async (
  round: readonly BatchUser[],
  deps: ConvergeDeps,
  options: ConvergeOptions,
  reads: TargetReads,
  first: boolean,
): Promise<void> => {
  const keepFailed = first && options.rereadInitialFailures === false;
  const missing = touchedTargets(round, deps.policy).filter((target) => {
    const key = targetKey(target);
    if (keepFailed && options.initial?.readErrors.has(key) === true) return false;
    return (options.scope === undefined || options.scope.has(key)) && !reads.actual.has(key);
  });
  const fresh = await readTargets(missing, deps.swr, options.concurrency, options.deadline);
  for (const [key, access] of fresh.actual) {
    reads.actual.set(key, access);
    reads.readErrors.delete(key);
  }
  for (const [key, error] of fresh.readErrors) reads.readErrors.set(key, error);
};

/** Reads back every target a call was done on; the read replaces the one from before the write. */
const readBack = async (
  calls: readonly CallResult[],
  deps: ConvergeDeps,
  options: ConvergeOptions,
  reads: TargetReads,
): Promise<Unverified[]> => {
  const done = calls.filter((result) => result.outcome === 'done');
  const written = new Map(done.map((result) => [targetKey(result.call.target), result.call.target]));
  for (const key of written.keys()) reads.actual.delete(key);
  const back = await readTargets([...written.values()], deps.swr, options.concurrency, options.deadline);
  for (const [key, access] of back.actual) reads.actual.set(key, access);
  for (const [key, error] of back.readErrors) reads.readErrors.set(key, error);
  return unverifiedChanges(
    done.flatMap((result) => result.call.changes),
    back.actual,
    back.readErrors,
  );
};

/** Users with a call done: re-read from the store; those whose record moved come back newer. */
const recheckStore = async (
  round: readonly BatchUser[],
  calls: readonly CallResult[],
  deps: ConvergeDeps,
  options: ConvergeOptions,
  unsettled: Map<string, SyncError>,
): Promise<BatchUser[]> => {
  const touched = new Set(
    calls
      .filter((result) => result.outcome === 'done')
      .flatMap((result) => result.call.changes.map((c) => c.userId)),
  );
  const moved: BatchUser[] = [];
  await mapLimit(
    round.filter((user) => touched.has(user.userId)),
    options.concurrency,
    async (user) => {
      try {
        const current = await deps.store.get(user.userId, { deadline: options.deadline });
        if (current !== undefined && current.version !== user.after.version)
          moved.push({ ...user, before: user.after, after: current });
      } catch (error) {
        unsettled.set(user.userId, asSyncError(error));
      }
    },
  );
  return moved;
};

/**
 * The users of the next round: those whose record moved (with the newer record), and those with
 * a change SWR acknowledged but does not show (with the same record). Sorted by user id.
 */
const nextRound = (
  round: readonly BatchUser[],
  moved: readonly BatchUser[],
  unverified: readonly Unverified[],
) => {
  const next = new Map(moved.map((user) => [user.userId, user]));
  const again = new Set(unverified.map((entry) => entry.change.userId));
  for (const user of round) if (again.has(user.userId) && !next.has(user.userId)) next.set(user.userId, user);
  return [...next.values()].sort((a, b) => (a.userId < b.userId ? -1 : 1));
};

const failuresOf = (
  perMessage: ReadonlyMap<string, MessageResult>,
  failures: Map<string, SyncError>,
): void => {
  for (const [messageId, outcome] of perMessage)
    if (outcome.status !== 'applied') recordFailure(failures, messageId, outcome.error);
};

type RoundEnd =
  /** Nothing moved and everything showed on read-back. */
  | { kind: 'settled' }
  /** `approve` refused the first plan. */
  | { kind: 'refused' }
  /** These users go round again (a newer record, or a write SWR does not show yet). */
  | { kind: 'again'; next: BatchUser[]; moved: BatchUser[] };

/** One round: read what is missing, plan, execute, read back, re-check the store. */
const runRound = async (
  round: readonly BatchUser[],
  first: boolean,
  deps: ConvergeDeps,
  options: ConvergeOptions,
  result: ConvergeResult,
): Promise<RoundEnd> => {
  await readMissing(round, deps, options, result.reads, first);
  const planned = plan({
    users: round,
    policy: deps.policy,
    actual: result.reads.actual,
    now: deps.now(),
    ...(options.scope === undefined ? {} : { scope: options.scope }),
  });
  result.plans.push(planned);
  if (first && options.approve !== undefined && !options.approve(planned)) return { kind: 'refused' };
  const executed = await execute(
    planned,
    { swr: deps.swr, now: () => deps.now().getTime() },
    {
      concurrency: options.concurrency,
      deadline: options.deadline,
      dryRun: options.dryRun,
      readErrors: result.reads.readErrors,
    },
  );
  result.calls.push(...executed.calls);
  failuresOf(executed.perMessage, result.failures);
  if (options.dryRun) return { kind: 'settled' };

  const unverified = await readBack(executed.calls, deps, options, result.reads);
  const moved = await recheckStore(round, executed.calls, deps, options, result.unsettled);
  result.replanned += moved.length;
  const movedIds = new Set(moved.map((user) => user.userId));
  // A moved user is planned again from the newer record: what it does not show yet is moot.
  result.unverified = unverified.filter((entry) => !movedIds.has(entry.change.userId));
  const next = nextRound(round, moved, result.unverified);
  return next.length === 0 ? { kind: 'settled' } : { kind: 'again', next, moved };
};

/**
 * Converges the users' permissions on SWR with what the policy gives them.
 *
 * @example
 * const result = await converge(batchUsers, { swr, store, policy, now }, { concurrency: 8, deadline, dryRun: false });
 * for (const [messageId, error] of result.failures) state.fail(messageId, error);
 */
const converge = async (
  users: readonly BatchUser[],
  deps: ConvergeDeps,
  options: ConvergeOptions,
): Promise<ConvergeResult> => {
  const result: ConvergeResult = {
    plans: [],
    calls: [],
    failures: new Map(),
    unverified: [],
    unsettled: new Map(),
    reads: {
      actual: new Map<string, TargetAccess>(options.initial?.actual ?? []),
      readErrors: new Map(options.initial?.readErrors ?? []),
    },
    replanned: 0,
    refused: false,
  };
  const maxReplans = options.maxReplans ?? defaultMaxReplans;
  let round = [...users];
  for (let attempt = 0; round.length > 0; attempt += 1) {
    if (deps.now().getTime() >= options.deadline) {
      for (const user of round) result.unsettled.set(user.userId, deadlineError());
      break;
    }
    const end = await runRound(round, attempt === 0, deps, options, result);
    if (end.kind === 'refused') result.refused = true;
    if (end.kind !== 'again') break;
    if (attempt >= maxReplans) {
      const error = new SyncError('the user kept changing during the batch', {
        code: ErrorCodes.conflict,
        retryable: true,
      });
      for (const user of end.moved) result.unsettled.set(user.userId, error);
      break;
    }
    round = end.next;
  }
  for (const { change, error } of result.unverified)
    for (const messageId of change.messageIds) recordFailure(result.failures, messageId, error);
  for (const user of users) {
    const error = result.unsettled.get(user.userId);
    if (error !== undefined) failUsers(result.failures, [user], error);
  }
  return result;
};

export type { ConvergeDeps, ConvergeOptions, ConvergeResult };
export { converge, recordFailure };

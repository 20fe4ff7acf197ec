/**
 * Runs a plan against the SWR permission port and says, per queue message, whether it was
 * applied or must be retried or dead-lettered. Calls for different targets run in parallel
 * (bounded); calls for the same target run one after another, in plan order.
 */
import type { Plan, PlannedCall, PlannedChange, SwrPermissionsPort, Target } from '../domain.ts';
import { targetKey } from '../domain.ts';
import { ErrorCodes, InvalidNameError, SyncError } from '../errors.ts';
import { mapLimit } from '../pool.ts';
import { subCall } from './planner.ts';

type CallOutcome = 'done' | 'failed' | 'skipped-dry-run';

interface CallResult {
  /** The call as sent: a planned call, or a part of one that SWR refused as a whole. */
  call: PlannedCall;
  outcome: CallOutcome;
  /** Set when `outcome` is `failed`; its `target` names the target of the call. */
  error?: SyncError;
  /** How long the call took (0 when it never started). */
  ms: number;
}

type MessageResult = { status: 'applied' } | { status: 'retryable' | 'permanent'; error: SyncError };

interface ExecutionResult {
  /**
   * One entry per call sent, in plan order: a planned call, or, where SWR refused a multi-user
   * call because of one entry, the parts it was split into (each user ends in exactly one).
   */
  calls: CallResult[];
  /** Every message of the plan (including those that needed no call). */
  perMessage: Map<string, MessageResult>;
  /** The changes of the calls that succeeded, in plan order: for audit logs. */
  applied: PlannedChange[];
}

interface ExecuteDeps {
  swr: SwrPermissionsPort;
  /** Epoch milliseconds; compared with `deadline`. Defaults to `Date.now`. */
  now?: () => number;
}

interface ExecuteOptions {
  /** Most calls in flight at once (across targets). Values below 1 count as 1. */
  concurrency: number;
  /** Absolute epoch ms after which no new call starts (their messages are retried). */
  deadline?: number;
  /**
   * Plan only: no call is made; a message counts as applied unless it needed a target that
   * could not be read or a user SWR would refuse (a dry run reports what a real run would hit).
   */
  dryRun?: boolean;
  /**
   * Why a skipped target could not be read, by `targetKey`: becomes the error of the messages
   * the plan lists as `blocked` on it. Without one, a generic retryable error is used.
   */
  readErrors?: ReadonlyMap<string, SyncError>;
}

/**
 * Every failure of a call becomes a SyncError that names the call's target: SWR errors keep
 * their code and retryability; anything else is a retryable crash, so no message is lost.
 * Unknown errors are described by name only: their text may carry what must not be logged.
 */
const toCallError = (error: unknown, call: PlannedCall): SyncError => {
  const key = targetKey(call.target);
  if (error instanceof SyncError) {
    if (error.target !== undefined) return error;
    return new SyncError(`${call.action} on ${key} failed: ${error.message}`, {
      code: error.code,
      retryable: error.retryable,
      target: key,
      cause: error,
    });
  }
  const name = error instanceof Error ? error.name : typeof error;
  return new SyncError(`${call.action} on ${key} crashed (${name})`, {
    code: ErrorCodes.crash,
    retryable: true,
    target: key,
    cause: error,
  });
};

const deadlineError = (call: PlannedCall): SyncError =>
  new SyncError(`${call.action} on ${targetKey(call.target)} not started: the invocation deadline passed`, {
    code: ErrorCodes.deadline,
    retryable: true,
    target: targetKey(call.target),
  });

const unreadError = (target: Target, readErrors: ReadonlyMap<string, SyncError> | undefined): SyncError => {
  const key = targetKey(target);
  return (
    readErrors?.get(key) ??
    new SyncError(`permissions of ${key} could not be read; nothing was changed there`, {
      code: ErrorCodes.network,
      retryable: true,
      target: key,
    })
  );
};

const rejectedError = (userId: string, target: Target, rule: string): SyncError => {
  const error = new InvalidNameError('user', `${userId} cannot be sent to SWR: ${rule}`);
  return new SyncError(`${targetKey(target)}: ${error.message}`, {
    code: error.code,
    retryable: false,
    target: targetKey(target),
    cause: error,
  });
};

/**
 * SWR answers a POST/PATCH/DELETE whose array holds one entry it refuses (an unknown user id, a bad
 * user name, the caller itself) by refusing the whole call: 400 `SVCSTG.SWR.400xxxx`, or 403
 * `4030170` for a self-grant. Such a call is split so that the entry fails alone.
 */
const refusesAnEntry = (error: SyncError): boolean =>
  !error.retryable &&
  (/^SVCSTG\.SWR\.400\d{4}$/.test(error.code) ||
    error.code === 'SVCSTG.SWR.4030170' ||
    error.code === ErrorCodes.invalidName);

const send = (swr: SwrPermissionsPort, call: PlannedCall, deadline: number | undefined): Promise<void> => {
  const options = { deadline };
  if (call.action === 'revoke') return swr.revoke(call.target, call.userIds, options);
  if (call.action === 'grant') return swr.grant(call.target, call.users, options);
  return swr.change(call.target, call.users, options);
};

/** The plan's calls grouped by target, each group in plan order, groups in first-seen order. */
const groupByTarget = (calls: readonly PlannedCall[]): number[][] => {
  const groups = new Map<string, number[]>();
  calls.forEach((call, index) => {
    const key = `${call.target.kind}:${targetKey(call.target)}`;
    groups.set(key, [...(groups.get(key) ?? []), index]);
  });
  return [...groups.values()];
};

/** Permanent beats retryable; within a kind, the first failure in plan order is the reason. */
const messageResult = (errors: readonly SyncError[]): MessageResult => {
  const permanent = errors.find((error) => !error.retryable);
  if (permanent !== undefined) return { status: 'permanent', error: permanent };
  const retryable = errors[0];
  return retryable === undefined ? { status: 'applied' } : { status: 'retryable', error: retryable };
};

const aggregate = (
  plan: Plan,
  results: readonly CallResult[],
  options: ExecuteOptions,
): Map<string, MessageResult> => {
  const errors = new Map<string, SyncError[]>();
  const add = (messageId: string, error?: SyncError): void => {
    const known = errors.get(messageId) ?? [];
    errors.set(messageId, error === undefined ? known : [...known, error]);
  };
  for (const messageId of plan.messageIds) add(messageId);
  for (const { call, error } of results) for (const messageId of call.messageIds) add(messageId, error);
  for (const { messageId, targets } of plan.blocked)
    for (const target of targets) add(messageId, unreadError(target, options.readErrors));
  for (const { userId, target, messageIds, rule } of plan.rejected)
    for (const messageId of messageIds) add(messageId, rejectedError(userId, target, rule));
  const perMessage = new Map<string, MessageResult>();
  for (const [messageId, found] of errors) perMessage.set(messageId, messageResult(found));
  return perMessage;
};

/**
 * Sends one call; when SWR refuses it because of one of its entries, sends each half again, down to
 * the single entry that fails (log2(n) extra calls per bad entry), so the others are applied.
 */
const sendSplitting = async (
  call: PlannedCall,
  swr: SwrPermissionsPort,
  deadline: number | undefined,
  now: () => number,
): Promise<CallResult[]> => {
  if (deadline !== undefined && now() >= deadline)
    return [{ call, outcome: 'failed', error: deadlineError(call), ms: 0 }];
  const started = performance.now();
  try {
    await send(swr, call, deadline);
    return [{ call, outcome: 'done', ms: Math.round(performance.now() - started) }];
  } catch (thrown) {
    const ms = Math.round(performance.now() - started);
    const error = toCallError(thrown, call);
    if (call.changes.length < 2 || !refusesAnEntry(error)) return [{ call, outcome: 'failed', error, ms }];
    const middle = Math.ceil(call.changes.length / 2);
    const left = await sendSplitting(subCall(call, call.changes.slice(0, middle)), swr, deadline, now);
    const right = await sendSplitting(subCall(call, call.changes.slice(middle)), swr, deadline, now);
    return [...left, ...right];
  }
};

/**
 * Executes a plan: bounded concurrency across targets, sequential within a target, a call's
 * failure only fails the messages that depend on it, and no call starts after the deadline.
 *
 * @example
 * const result = await execute(plan, { swr }, { concurrency: 4, deadline: Date.now() + 20_000 });
 * for (const [messageId, r] of result.perMessage) if (r.status !== 'applied') failures.push(messageId);
 */
const execute = async (plan: Plan, deps: ExecuteDeps, options: ExecuteOptions): Promise<ExecutionResult> => {
  const now = deps.now ?? Date.now;
  // Before a call is sent it has not succeeded: a call that never starts counts as failed.
  const sent: CallResult[][] = plan.calls.map((call) => [
    options.dryRun === true
      ? { call, outcome: 'skipped-dry-run', ms: 0 }
      : { call, outcome: 'failed', ms: 0 },
  ]);
  if (options.dryRun !== true) {
    const limit = Number.isFinite(options.concurrency) ? Math.max(1, Math.floor(options.concurrency)) : 1;
    await mapLimit(groupByTarget(plan.calls), limit, async (indexes) => {
      for (const index of indexes)
        sent[index] = await sendSplitting(plan.calls[index] as PlannedCall, deps.swr, options.deadline, now);
    });
  }
  const calls = sent.flat();

  return {
    calls,
    perMessage: aggregate(plan, calls, options),
    applied: calls.filter((result) => result.outcome === 'done').flatMap((result) => result.call.changes),
  };
};

export type { CallOutcome, CallResult, ExecuteDeps, ExecuteOptions, ExecutionResult, MessageResult };
export { execute };

/**
 * Runs a plan against the SWR permission port and says, per queue message, whether it was
 * applied or must be retried or dead-lettered. Calls for different targets run in parallel
 * (bounded); calls for the same target run one after another, in plan order.
 */
import { performance } from 'node:perf_hooks';
import type { Plan, PlannedCall, PlannedChange, SwrPermissionsPort, Target } from '../domain.ts';
import { targetKey } from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';
import { mapLimit } from '../pool.ts';

type CallOutcome = 'done' | 'failed' | 'skipped-dry-run';

interface CallResult {
  call: PlannedCall;
  outcome: CallOutcome;
  /** Set when `outcome` is `failed`; its `target` names the target of the call. */
  error?: SyncError;
  /** How long the call took (0 when it never started). */
  ms: number;
}

type MessageResult = { status: 'applied' } | { status: 'retryable' | 'permanent'; error: SyncError };

interface ExecutionResult {
  /** One entry per planned call, in plan order. */
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
  /** Plan only: no call is made and every message counts as applied. */
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
  if (options.dryRun !== true)
    for (const { messageId, targets } of plan.blocked)
      for (const target of targets) add(messageId, unreadError(target, options.readErrors));
  const perMessage = new Map<string, MessageResult>();
  for (const [messageId, found] of errors) perMessage.set(messageId, messageResult(found));
  return perMessage;
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
  const results: CallResult[] = plan.calls.map((call) =>
    options.dryRun === true
      ? { call, outcome: 'skipped-dry-run', ms: 0 }
      : { call, outcome: 'failed', ms: 0 },
  );

  if (options.dryRun !== true) {
    const limit = Number.isFinite(options.concurrency) ? Math.max(1, Math.floor(options.concurrency)) : 1;
    await mapLimit(groupByTarget(plan.calls), limit, async (indexes) => {
      for (const index of indexes) {
        const call = plan.calls[index] as PlannedCall;
        if (options.deadline !== undefined && now() >= options.deadline) {
          results[index] = { call, outcome: 'failed', error: deadlineError(call), ms: 0 };
          continue;
        }
        const started = performance.now();
        try {
          await send(deps.swr, call, options.deadline);
          results[index] = { call, outcome: 'done', ms: Math.round(performance.now() - started) };
        } catch (error) {
          const ms = Math.round(performance.now() - started);
          results[index] = { call, outcome: 'failed', error: toCallError(error, call), ms };
        }
      }
    });
  }

  return {
    calls: results,
    perMessage: aggregate(plan, results, options),
    applied: results.filter((result) => result.outcome === 'done').flatMap((result) => result.call.changes),
  };
};

export type { CallOutcome, CallResult, ExecuteDeps, ExecuteOptions, ExecutionResult, MessageResult };
export { execute };

/**
 * The offboarding sweep: someone who left the company loses every permission in the policy's
 * targets AND in the namespaces the service owns (`policy.managedNamespaces`) — a grant made by
 * hand on a repository no team mentions must not survive either. It runs after the user's known
 * grants were revoked (the targets of their teams: seconds), and it is built for namespaces of
 * any size:
 * - it reads, revokes and verifies one page of targets at a time ("revoke as you read");
 * - a target read earlier in the same delivery (the known targets, the policy's targets, each
 *   read after its last write) is not read again when a namespace page comes to it: a sweep reads
 *   each target once per delivery;
 * - it keeps its progress (a cursor per namespace) after every page, so a delivery that runs out
 *   of time hands over to the next delivery, or to the scheduled reconcile, instead of starting
 *   again;
 * - a listing or a read that fails never counts as "nothing there": the user stays unfinished.
 * When every target was checked and the user holds nothing anywhere, the sweep is finished: that
 * is the proof an offboarding took effect.
 */

import { type ConvergeDeps, converge } from '../converge/converge.ts';
import type { CallResult } from '../core/executor.ts';
import type { BatchUser } from '../core/planner.ts';
import { allPolicyTargets } from '../core/policy.ts';
import type { Target } from '../domain.ts';
import { targetKey } from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';
import { mapLimit } from '../pool.ts';
import { asSyncError, type TargetReads } from '../read-targets.ts';
import { isSwept, progressFor, type SweepProgress, type SweepProgressPort } from './progress.ts';

interface SweepDeps extends ConvergeDeps {
  progress: SweepProgressPort;
}

interface SweepOptions {
  /** SWR calls in flight at once for the sweep (its own, apart from the batch's). */
  concurrency: number;
  /** Absolute epoch ms; the sweep stops early enough to save its progress. */
  deadline: number;
  dryRun: boolean;
  /** Targets read, revoked and verified per step (default 100). */
  pageSize?: number;
  /** Time kept back from the deadline to save progress (default 1 s). */
  saveReserveMs?: number;
}

/** What the sweep proved for a user whose every target was checked. */
interface OffboardingProof {
  userId: string;
  userName: string;
  offboardedAt: string;
  /** When the last target was checked. */
  provenAt: string;
  /** Targets checked for the user, over every delivery. */
  checked: number;
  /** The policy's targets and each managed namespace (every repository in it). */
  scope: string[];
}

interface UserSweep {
  done: boolean;
  /** Why the user is not finished (retryable unless the cause is permanent). */
  error?: SyncError;
  progress?: SweepProgress;
}

interface SweepResult {
  users: Map<string, UserSweep>;
  /** Every call sent by the sweep (for metrics and the audit trail). */
  calls: CallResult[];
  proofs: OffboardingProof[];
}

const defaultPageSize = 100;
const defaultSaveReserveMs = 1_000;

/** Converge reports failures by message: one synthetic message per swept user maps them back. */
const sweepMessageId = (userId: string): string => `sweep:${userId}`;

const asSweepUser = (user: BatchUser, extraTargets: readonly Target[]): BatchUser => ({
  ...user,
  messageIds: [sweepMessageId(user.userId)],
  offboardingInBatch: true,
  extraTargets,
});

const inProgressError = (progress: SweepProgress, why: string): SyncError =>
  new SyncError(
    `offboarding sweep not finished (${progress.checked} targets checked so far, ${why}); the known grants are revoked and the next delivery continues from where this one stopped`,
    { code: ErrorCodes.sweepInProgress, retryable: true },
  );

/** One namespace's targets in a stable order: the namespace itself (`ns`), then `ns/<repository>`. */
const namespaceTargets = (namespace: string, repositories: readonly string[]): Target[] => [
  { kind: 'namespace', namespace },
  ...[...new Set(repositories)].sort().map((repository): Target => ({ kind: 'repo', namespace, repository })),
];

const pagesOf = <T>(items: readonly T[], size: number): T[][] => {
  const pages: T[][] = [];
  for (let start = 0; start < items.length; start += size) pages.push(items.slice(start, start + size));
  return pages;
};

interface SweepRun {
  deps: SweepDeps;
  options: SweepOptions;
  /** Users still being swept, by id. */
  users: Map<string, BatchUser>;
  progress: Map<string, SweepProgress>;
  errors: Map<string, SyncError>;
  calls: CallResult[];
  /**
   * The reads of this delivery that later steps reuse: the caller's (known targets) and the policy
   * step's, each the latest read of its target. Namespace pages are not kept here: they do not
   * overlap, and a namespace of any size must not grow the memory of one delivery.
   */
  reads: TargetReads | undefined;
  /** Stop before this instant (epoch ms): what is left is saved and continued later. */
  stopAt: number;
}

/**
 * Runs one step (a set of targets) for some users; a user with a failure there keeps its cursor.
 * Targets `run.reads` holds are not read again.
 */
const step = async (
  run: SweepRun,
  users: readonly BatchUser[],
  targets: readonly Target[],
): Promise<{ failed: Set<string>; reads: TargetReads }> => {
  const scope = new Set(targets.map(targetKey));
  const result = await converge(
    users.map((user) => asSweepUser(user, targets)),
    run.deps,
    {
      concurrency: run.options.concurrency,
      deadline: run.options.deadline,
      dryRun: run.options.dryRun,
      scope,
      ...(run.reads === undefined ? {} : { initial: run.reads }),
    },
  );
  run.calls.push(...result.calls);
  const failed = new Set<string>();
  for (const user of users) {
    const error = result.failures.get(sweepMessageId(user.userId)) ?? result.unsettled.get(user.userId);
    if (error === undefined) continue;
    failed.add(user.userId);
    if (!run.errors.has(user.userId)) run.errors.set(user.userId, error);
  }
  return { failed, reads: result.reads };
};

const save = async (run: SweepRun, userIds: Iterable<string>): Promise<void> => {
  if (run.options.dryRun) return;
  await mapLimit([...userIds], run.options.concurrency, async (userId) => {
    const progress = run.progress.get(userId);
    if (progress === undefined) return;
    progress.updatedAt = run.deps.now().toISOString();
    try {
      await run.deps.progress.save(progress, { deadline: run.options.deadline });
    } catch (error) {
      // The revokes are done; only the cursor is lost, so the next delivery re-checks this part.
      if (!run.errors.has(userId)) run.errors.set(userId, asSyncError(error));
    }
  });
};

/** Every policy target, for the users who have not had them checked for this tombstone. */
const sweepPolicy = async (run: SweepRun): Promise<void> => {
  const users = [...run.users.values()].filter((user) => !run.progress.get(user.userId)?.policyDone);
  if (users.length === 0) return;
  const targets = allPolicyTargets(run.deps.policy);
  const { failed, reads } = await step(run, users, targets);
  run.reads = reads;
  for (const user of users) {
    const progress = run.progress.get(user.userId) as SweepProgress;
    progress.checked += targets.length;
    if (!failed.has(user.userId)) progress.policyDone = true;
  }
  await save(
    run,
    users.map((user) => user.userId),
  );
};

/** One managed namespace, page by page from each user's cursor. */
const sweepNamespace = async (run: SweepRun, namespace: string): Promise<void> => {
  const users = [...run.users.values()].filter(
    (user) => run.progress.get(user.userId)?.namespaces[namespace]?.done !== true,
  );
  if (users.length === 0) return;
  let targets: Target[];
  try {
    targets = namespaceTargets(
      namespace,
      await run.deps.swr.listRepositories(namespace, { deadline: run.stopAt }),
    );
  } catch (error) {
    const failure = asSyncError(error);
    const listing = new SyncError(
      `repositories of managed namespace ${namespace} could not be listed (${failure.message}); the offboarding sweep is incomplete`,
      { code: failure.code, retryable: failure.retryable, target: namespace, cause: failure },
    );
    for (const user of users) if (!run.errors.has(user.userId)) run.errors.set(user.userId, listing);
    return;
  }
  const cursorOf = (user: BatchUser) => run.progress.get(user.userId)?.namespaces[namespace]?.after;
  const stuck = new Set<string>();
  for (const page of pagesOf(targets, run.options.pageSize ?? defaultPageSize)) {
    const last = targetKey(page[page.length - 1] as Target);
    const due = users.filter((user) => {
      const cursor = cursorOf(user);
      return cursor === undefined || cursor < last || stuck.has(user.userId);
    });
    if (due.length === 0) continue;
    if (run.deps.now().getTime() >= run.stopAt) {
      for (const user of due)
        if (!run.errors.has(user.userId))
          run.errors.set(
            user.userId,
            inProgressError(
              run.progress.get(user.userId) as SweepProgress,
              `stopped in ${namespace} before the deadline`,
            ),
          );
      break;
    }
    const { failed } = await step(run, due, page);
    for (const user of due) {
      const progress = run.progress.get(user.userId) as SweepProgress;
      progress.checked += page.length;
      if (failed.has(user.userId)) stuck.add(user.userId);
      // A page with a failure is done again by the next delivery: the cursor stays before it.
      if (!stuck.has(user.userId)) progress.namespaces[namespace] = { after: last, done: false };
    }
    await save(
      run,
      due.map((user) => user.userId),
    );
  }
  for (const user of users) {
    const progress = run.progress.get(user.userId) as SweepProgress;
    const cursor = progress.namespaces[namespace]?.after;
    const lastKey = targetKey(targets[targets.length - 1] as Target);
    if (!stuck.has(user.userId) && !run.errors.has(user.userId) && cursor !== undefined && cursor >= lastKey)
      progress.namespaces[namespace] = { after: cursor, done: true };
  }
};

const loadProgress = async (run: SweepRun, users: readonly BatchUser[]): Promise<void> => {
  await mapLimit(users, run.options.concurrency, async (user) => {
    try {
      const stored = await run.deps.progress.get(user.userId, { deadline: run.options.deadline });
      run.progress.set(
        user.userId,
        progressFor(stored, user.userId, user.after.offboardedAt as string, run.deps.now()),
      );
    } catch (error) {
      run.errors.set(user.userId, asSyncError(error));
      run.users.delete(user.userId);
    }
  });
};

/**
 * Sweeps the policy targets and the managed namespaces for users who left the company (their
 * record carries a tombstone). `initial` are reads the caller already made (the known targets),
 * used instead of reading them again.
 *
 * @example
 * const swept = await sweepOffboarded(tombstoned, { swr, store, policy, now, progress }, { concurrency: 16, deadline, dryRun: false });
 * for (const [userId, outcome] of swept.users) if (!outcome.done) failMessagesOf(userId, outcome.error);
 */
const sweepOffboarded = async (
  users: readonly BatchUser[],
  deps: SweepDeps,
  options: SweepOptions,
  initial?: TargetReads,
): Promise<SweepResult> => {
  const run: SweepRun = {
    deps,
    options,
    users: new Map(users.filter((user) => user.after.offboardedAt !== undefined).map((u) => [u.userId, u])),
    progress: new Map(),
    errors: new Map(),
    calls: [],
    reads: initial,
    stopAt: options.deadline - (options.saveReserveMs ?? defaultSaveReserveMs),
  };
  await loadProgress(run, [...run.users.values()]);
  for (const user of [...run.users.values()])
    if (isSwept(run.progress.get(user.userId) as SweepProgress, deps.policy.managedNamespaces))
      run.users.delete(user.userId);
  await sweepPolicy(run);
  for (const namespace of deps.policy.managedNamespaces) await sweepNamespace(run, namespace);

  const result: SweepResult = { users: new Map(), calls: run.calls, proofs: [] };
  const finished: string[] = [];
  for (const user of users) {
    const progress = run.progress.get(user.userId);
    const error = run.errors.get(user.userId);
    if (progress !== undefined && error === undefined && isSwept(progress, deps.policy.managedNamespaces)) {
      if (progress.finishedAt === undefined && run.users.has(user.userId)) {
        progress.finishedAt = deps.now().toISOString();
        finished.push(user.userId);
        result.proofs.push({
          userId: user.userId,
          userName: user.userName,
          offboardedAt: progress.offboardedAt,
          provenAt: progress.finishedAt,
          checked: progress.checked,
          scope: ['policy targets', ...deps.policy.managedNamespaces.map((ns) => `namespace ${ns}`)],
        });
      }
      result.users.set(user.userId, { done: true, progress });
    } else
      result.users.set(user.userId, {
        done: false,
        error:
          error ??
          new SyncError('offboarding sweep not finished', {
            code: ErrorCodes.sweepInProgress,
            retryable: true,
          }),
        ...(progress === undefined ? {} : { progress }),
      });
  }
  await save(run, finished);
  return result;
};

export type { OffboardingProof, SweepDeps, SweepOptions, SweepResult, UserSweep };
export { sweepOffboarded };

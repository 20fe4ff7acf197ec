/**
 * The scheduled reconcile: for every target the policy names, compares what SWR reports with
 * what the policy gives the users of the membership store, and closes the gap with the same
 * planner and executor as the queue handlers (one call per target and action).
 *
 * Who is touched where:
 * - users the store knows: on every reconciled target (a grant no team of theirs gives, e.g. from
 *   a policy entry since removed, is revoked);
 * - users the store does not know: only on targets the policy marks `exclusive` (stale grants);
 *   elsewhere their grants are someone else's business;
 * - protected users and the caller itself (`self_auth`): never.
 * A target whose read failed is skipped: nothing is planned there (never revoke on a failed read).
 * Only targets in the policy are reconciled: a target removed from the policy keeps its grants.
 */

import { auditRecordsOf, countCalls } from '../converge/audit.ts';
import { type ConvergeResult, converge } from '../converge/converge.ts';
import { isTombstoned } from '../core/desired.ts';
import type { CallResult } from '../core/executor.ts';
import { needsSettling, settleRecord } from '../core/membership.ts';
import type { BatchUser } from '../core/planner.ts';
import { allPolicyTargets } from '../core/policy.ts';
import type {
  ApplyOutcome,
  CallOptions,
  MembershipStorePort,
  Plan,
  Policy,
  SwrPermissionsPort,
  Target,
  TargetAccess,
  UserRecord,
} from '../domain.ts';
import { ChangeReasons, targetKey } from '../domain.ts';
import { StoreError } from '../errors.ts';
import {
  type AuditRecord,
  auditLogAttributes,
  type Log,
  MetricNames,
  type MetricsSink,
} from '../observability.ts';
import type { SweepProgressPort } from '../offboarding/progress.ts';
import { sweepOffboarded } from '../offboarding/sweep.ts';
import { asSyncError, readTargets } from '../read-targets.ts';
import { checkMassRevoke, type GuardReport, GuardStatuses, type MassRevokeLimits } from './guard.ts';
import {
  foundOf,
  newTargetReport,
  type ReconcileReport,
  reconcileLogAttributes,
  type TargetReport,
  totalsOf,
} from './report.ts';

interface ReconcileDeps {
  swr: SwrPermissionsPort;
  store: MembershipStorePort;
  policy: Policy;
  log: Log;
  metrics: MetricsSink;
  /** Keeps audit records durably; a failure here is logged (the changes themselves are done). */
  audit?: (records: readonly AuditRecord[], options?: CallOptions) => Promise<void>;
  /**
   * The offboarding sweep's progress: reconcile finishes sweeps that deliveries left unfinished
   * (and sweeps for leave dates that became due). Absent: no sweep in this run.
   */
  sweepProgress?: SweepProgressPort;
  now: () => Date;
}

interface ReconcileOptions {
  /** Plan and report only: no write call is made. */
  dryRun: boolean;
  /** Apply a plan the mass-revoke guard would stop (a person decided it is right). */
  allowMassRevoke: boolean;
  massRevoke: MassRevokeLimits;
  /** SWR calls in flight at once. */
  concurrency: number;
  /** Absolute epoch ms after which no call starts. */
  deadline: number;
  /** Who acts, for the audit trail (default `reconcile`). */
  actor?: string;
  /** How often users whose store record moved during the run are planned again (default 3). */
  maxReplans?: number;
}

/** Keys of targets with at least one exclusive policy entry (for a namespace: any of its entries). */
const exclusiveTargetKeys = (policy: Policy): Set<string> => {
  const keys = new Set<string>();
  for (const grants of Object.values(policy.teams))
    for (const grant of grants) if (grant.exclusive) keys.add(targetKey(grant.target));
  return keys;
};

interface StoredUser {
  record: UserRecord;
  /** Teams whose membership ended by expiry when the run settled the record (team → instant). */
  expiredTeams: Record<string, string>;
}

const expiriesOf = (outcomes: readonly ApplyOutcome[]): Record<string, string> =>
  Object.fromEntries(
    outcomes.flatMap((outcome) =>
      outcome.expired === undefined ? [] : [[outcome.expired.team, outcome.expired.at]],
    ),
  );

/** Every stored user; a store that cannot be listed stops the run (never "nobody is known"). */
const listStore = async (
  store: MembershipStorePort,
  now: Date,
  options: ReconcileOptions,
): Promise<StoredUser[]> => {
  const users: StoredUser[] = [];
  const callOptions = { deadline: options.deadline };
  try {
    for await (const record of store.list(callOptions)) {
      // Time-bound access: future-effective facts that are now due, and expired memberships,
      // take effect here (a dry run only computes them).
      if (!needsSettling(record, now)) users.push({ record, expiredTeams: {} });
      else if (options.dryRun) {
        const settled = settleRecord(record, now);
        users.push({ record: settled.record, expiredTeams: expiriesOf(settled.outcomes) });
      } else {
        const settled = await store.applyDue(record.userId, now, callOptions);
        users.push({ record: settled?.after ?? record, expiredTeams: expiriesOf(settled?.settled ?? []) });
      }
    }
  } catch (error) {
    if (error instanceof StoreError) throw error;
    throw new StoreError('the membership store could not be listed; reconcile changed nothing', {
      cause: error,
    });
  }
  return users;
};

const unknownRecord = (userId: string, userName: string): UserRecord => ({
  userId,
  userName,
  teams: {},
  version: 0,
});

/**
 * One planner user per stored user (before = after = the record), plus one per user the store
 * does not know who holds a grant on an exclusive target (desired: none). `extraTargets` are the
 * reconciled targets where SWR shows the user's grant, so the planner looks at them even when
 * none of the user's teams names them.
 */
const reconcileUsers = (
  stored: readonly StoredUser[],
  targets: readonly Target[],
  actual: ReadonlyMap<string, TargetAccess>,
  policy: Policy,
  exclusive: ReadonlySet<string>,
): { users: BatchUser[]; unknown: number } => {
  const protectedUsers = new Set(policy.protectedUsers);
  const known = new Map(stored.map((user) => [user.record.userId, user] as const));
  const held = new Map<string, { userName: string; targets: Target[] }>();
  for (const target of targets) {
    const key = targetKey(target);
    const access = actual.get(key);
    if (access === undefined) continue;
    for (const entry of access.users) {
      if (entry.user_id === access.selfUserId || protectedUsers.has(entry.user_id)) continue;
      if (!known.has(entry.user_id) && !exclusive.has(key)) continue;
      const holder = held.get(entry.user_id) ?? { userName: entry.user_name, targets: [] };
      holder.targets.push(target);
      held.set(entry.user_id, holder);
    }
  }
  const batchUser = (record: UserRecord, before: UserRecord | undefined): BatchUser => ({
    userId: record.userId,
    userName: record.userName,
    before,
    after: record,
    messageIds: [],
    eventIds: [],
    offboardingInBatch: false,
    extraTargets: held.get(record.userId)?.targets ?? [],
  });
  const users = stored.map(({ record, expiredTeams }) => ({
    ...batchUser(record, record),
    ...(Object.keys(expiredTeams).length === 0 ? {} : { expiredTeams }),
  }));
  let unknown = 0;
  for (const [userId, holder] of held) {
    if (known.has(userId)) continue;
    unknown += 1;
    users.push({ ...batchUser(unknownRecord(userId, holder.userName), undefined), unknownHolder: true });
  }
  return { users, unknown };
};

const reportOf = (reports: Map<string, TargetReport>, target: Target): TargetReport => {
  const key = targetKey(target);
  let report = reports.get(key);
  if (report === undefined) {
    report = newTargetReport(target, false);
    reports.set(key, report);
  }
  return report;
};

const countPlanned = (planned: Plan, reports: Map<string, TargetReport>): void => {
  for (const call of planned.calls)
    reportOf(reports, call.target).planned[call.action] += call.changes.length;
};

/** Revokes a person decided (offboarding, expiry) are counted apart by the guard. */
const decidedKinds: ReadonlySet<string> = new Set([ChangeReasons.offboarding, ChangeReasons.expiry]);

/** The guard's look at the first plan: the one a broken policy would produce. */
const guardFirstPlan = (
  first: Plan,
  found: number,
  options: ReconcileOptions,
  deps: ReconcileDeps,
): GuardReport => {
  const revokes = first.calls.filter((call) => call.action === 'revoke').flatMap((call) => call.changes);
  const decided = revokes.filter((change) => decidedKinds.has(change.reason.kind)).length;
  const guard = checkMassRevoke(
    { revokes: revokes.length - decided, decided, found },
    options.massRevoke,
    options.allowMassRevoke,
  );
  const attributes = { revokes: guard.revokes, decided, found, share: guard.share, reason: guard.reason };
  if (guard.status === GuardStatuses.blocked && !options.dryRun) {
    deps.metrics.count(MetricNames.massRevokeBlocked);
    deps.log.error('mass revoke blocked: reconcile applied nothing', {
      alarm: 'mass-revoke',
      ...attributes,
      maxCount: guard.maxCount,
      maxShare: guard.maxShare,
      floor: guard.floor,
    });
  } else if (guard.status === GuardStatuses.blocked)
    deps.log.warn('mass revoke would be blocked (dry run)', attributes);
  else if (guard.status === GuardStatuses.overridden)
    deps.log.warn('mass revoke allowed by override', { actor: options.actor ?? 'reconcile', ...attributes });
  return guard;
};

/** Per target: what was done, what failed, what could not be read or verified after writing. */
const reportCalls = (
  result: ConvergeResult,
  firstReadErrors: ReadonlyMap<string, unknown>,
  reports: Map<string, TargetReport>,
): void => {
  for (const plan of result.plans) countPlanned(plan, reports);
  for (const call of result.calls) reportCall(call, reports);
  for (const [key, error] of result.reads.readErrors) {
    if (firstReadErrors.has(key)) continue;
    reports.get(key)?.errors.push({
      action: 'read',
      code: error.code,
      reason: error.message,
      retryable: error.retryable,
      users: 0,
    });
  }
  for (const { change, error } of result.unverified) {
    const report = reportOf(reports, change.target);
    report.failed += 1;
    report.errors.push({
      action: change.action,
      code: error.code,
      reason: error.message,
      retryable: true,
      users: 1,
    });
  }
};

const reportCall = (call: CallResult, reports: Map<string, TargetReport>): void => {
  const report = reportOf(reports, call.call.target);
  const count = call.call.changes.length;
  if (call.outcome === 'failed') {
    const error = call.error ?? asSyncError(undefined);
    report.failed += count;
    report.errors.push({
      action: call.call.action,
      code: error.code,
      reason: error.message,
      retryable: error.retryable,
      users: count,
    });
  } else if (call.outcome === 'done') {
    if (call.call.action === 'grant') report.granted += count;
    else if (call.call.action === 'change') report.changed += count;
    else report.revoked += count;
  }
};

/** Finishes the offboarding sweeps of tombstoned users that deliveries left unfinished. */
const finishSweeps = async (
  stored: readonly StoredUser[],
  deps: ReconcileDeps,
  options: ReconcileOptions,
  problems: ReconcileReport['problems'],
): Promise<CallResult[]> => {
  if (deps.sweepProgress === undefined) return [];
  const now = deps.now();
  const leavers: BatchUser[] = stored
    .filter(({ record }) => isTombstoned(record, now))
    .map(({ record }) => ({
      userId: record.userId,
      userName: record.userName,
      before: record,
      after: record,
      messageIds: [],
      eventIds: [],
      offboardingInBatch: true,
    }));
  if (leavers.length === 0) return [];
  const swept = await sweepOffboarded(
    leavers,
    { swr: deps.swr, store: deps.store, policy: deps.policy, now: deps.now, progress: deps.sweepProgress },
    { concurrency: options.concurrency, deadline: options.deadline, dryRun: options.dryRun },
  );
  for (const [userId, outcome] of swept.users)
    if (!outcome.done)
      problems.push({
        code: outcome.error?.code ?? 'SWEEP_IN_PROGRESS',
        reason: `offboarding sweep of user ${userId} not finished: ${outcome.error?.message ?? 'unknown'}`,
      });
  for (const proof of swept.proofs) deps.log.info('offboarding proven', { ...proof, proof: true });
  return swept.calls;
};

/**
 * Runs one reconcile. Throws (a `StoreError`) only when the membership store cannot be listed;
 * every other failure is in the report (`ok: false`).
 *
 * SWR is read before the store: whatever an event changes meanwhile, the store the plan uses is
 * at least as new as the permissions it compares with. The shared converge routine then applies,
 * reads back what it wrote and re-reads every user it moved from the store; a record that moved
 * (a concurrent join, leave or offboarding) is planned again, so no grant of the run survives an
 * offboarding.
 *
 * @example
 * const report = await runReconcile(
 *   { swr, store, policy, log, metrics, now: () => new Date() },
 *   { dryRun: false, allowMassRevoke: false, massRevoke: { maxCount: 50, maxShare: 0.2 }, concurrency: 8, deadline },
 * );
 * console.log(formatReconcileTable(report));
 */
const runReconcile = async (deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileReport> => {
  const { policy, log } = deps;
  const actor = options.actor ?? 'reconcile';
  const startedAt = deps.now();
  const targets = allPolicyTargets(policy);
  const exclusive = exclusiveTargetKeys(policy);
  const reports = new Map<string, TargetReport>(
    targets.map((target) => [targetKey(target), newTargetReport(target, exclusive.has(targetKey(target)))]),
  );
  const problems: ReconcileReport['problems'] = [];

  // 1. What SWR has, then 2. who the store knows (in that order: see above).
  const first = await readTargets(targets, deps.swr, options.concurrency, options.deadline);
  for (const [key, access] of first.actual) (reports.get(key) as TargetReport).found = foundOf(access);
  for (const [key, error] of first.readErrors)
    (reports.get(key) as TargetReport).skipped = { code: error.code, reason: error.message };
  const stored = await listStore(deps.store, startedAt, options);

  // 3. Every user at once (calls coalesce across users), behind the guard.
  const { users, unknown } = reconcileUsers(stored, targets, first.actual, policy, exclusive);
  const found = [...first.actual.values()].reduce((sum, access) => sum + foundOf(access).users, 0);
  let guard: GuardReport | undefined;
  const result = await converge(
    users,
    { swr: deps.swr, store: deps.store, policy, now: deps.now },
    {
      concurrency: options.concurrency,
      deadline: options.deadline,
      dryRun: options.dryRun,
      initial: first,
      ...(options.maxReplans === undefined ? {} : { maxReplans: options.maxReplans }),
      approve: (plan) => {
        guard = guardFirstPlan(plan, found, options, deps);
        return guard.status !== GuardStatuses.blocked;
      },
    },
  );
  reportCalls(result, first.readErrors, reports);
  for (const [userId, error] of result.unsettled)
    problems.push({ code: error.code, reason: `user ${userId} not settled: ${error.message}` });
  const sweepCalls = result.refused ? [] : await finishSweeps(stored, deps, options, problems);
  for (const call of sweepCalls) reportCall(call, reports);
  const calls = [...result.calls, ...sweepCalls];
  countCalls(calls, deps.metrics);

  // A blocked run lists what it would have done (never applied: marked as a dry run), so the
  // person deciding on --allow-mass-revoke sees every user it touches and why.
  const blockedPlan = result.refused ? (result.plans[0]?.calls ?? []) : [];
  const changes = [
    ...auditRecordsOf(calls, { actor, dryRun: options.dryRun, at: deps.now() }),
    ...auditRecordsOf(
      blockedPlan.map((call) => ({ call, outcome: 'skipped-dry-run' as const, ms: 0 })),
      { actor, dryRun: true, at: deps.now() },
    ),
  ];
  for (const change of changes) log.info('access changed', auditLogAttributes(change));
  const applied = changes.filter((change) => !change.dryRun);
  if (deps.audit !== undefined && applied.length > 0)
    await deps.audit(applied, { deadline: options.deadline }).catch((error: unknown) =>
      log.error('audit records could not be stored; they are in this log', {
        error: asSyncError(error).message,
      }),
    );

  const finishedAt = deps.now();
  const targetReports = [...reports.values()];
  const totals = totalsOf(targetReports);
  const blocked = result.refused;
  const report: ReconcileReport = {
    actor,
    dryRun: options.dryRun,
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    durationMs: Math.max(0, finishedAt.getTime() - startedAt.getTime()),
    policyFile: policy.sourcePath,
    users: { stored: stored.length, unknownOnExclusive: unknown },
    targets: targetReports,
    totals,
    guard: guard ?? checkMassRevoke({ revokes: 0, found }, options.massRevoke, options.allowMassRevoke),
    replanned: result.replanned,
    problems,
    ok:
      !blocked &&
      totals.skipped === 0 &&
      totals.failed === 0 &&
      problems.length === 0 &&
      targetReports.every((target) => target.errors.length === 0),
    changes,
  };
  if (report.ok) log.info('reconcile report', reconcileLogAttributes(report));
  else log.warn('reconcile report', reconcileLogAttributes(report));
  return report;
};

export type { ReconcileDeps, ReconcileOptions };
export { exclusiveTargetKeys, runReconcile };

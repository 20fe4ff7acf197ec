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

import { type CallResult, execute } from '../core/executor.ts';
import { needsSettling, settleRecord } from '../core/membership.ts';
import { type BatchUser, plan, touchedTargets } from '../core/planner.ts';
import { allPolicyTargets } from '../core/policy.ts';
import type {
  MembershipStorePort,
  Plan,
  Policy,
  SwrPermissionsPort,
  Target,
  TargetAccess,
  UserRecord,
} from '../domain.ts';
import { targetKey } from '../domain.ts';
import { ErrorCodes, StoreError } from '../errors.ts';
import {
  type AuditRecord,
  auditLogAttributes,
  type Log,
  MetricNames,
  type MetricsSink,
} from '../observability.ts';
import { mapLimit } from '../pool.ts';
import { asSyncError, readTargets } from '../read-targets.ts';
import { checkMassRevoke, GuardStatuses, type MassRevokeLimits } from './guard.ts';
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
  audit?: (records: readonly AuditRecord[]) => Promise<void>;
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

const defaultMaxReplans = 3;

/** Keys of targets with at least one exclusive policy entry (for a namespace: any of its entries). */
const exclusiveTargetKeys = (policy: Policy): Set<string> => {
  const keys = new Set<string>();
  for (const grants of Object.values(policy.teams))
    for (const grant of grants) if (grant.exclusive) keys.add(targetKey(grant.target));
  return keys;
};

/** Every stored user; a store that cannot be listed stops the run (never "nobody is known"). */
const listStore = async (store: MembershipStorePort, now: Date, dryRun: boolean): Promise<UserRecord[]> => {
  const records: UserRecord[] = [];
  try {
    for await (const record of store.list()) {
      // Time-bound access: future-effective facts that are now due, and expired memberships,
      // take effect here (a dry run only computes them).
      if (!needsSettling(record, now)) records.push(record);
      else if (dryRun) records.push(settleRecord(record, now).record);
      else records.push((await store.applyDue(record.userId, now))?.after ?? record);
    }
  } catch (error) {
    if (error instanceof StoreError) throw error;
    throw new StoreError('the membership store could not be listed; reconcile changed nothing', {
      cause: error,
    });
  }
  return records;
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
  stored: readonly UserRecord[],
  targets: readonly Target[],
  actual: ReadonlyMap<string, TargetAccess>,
  policy: Policy,
  exclusive: ReadonlySet<string>,
): { users: BatchUser[]; unknown: number } => {
  const protectedUsers = new Set(policy.protectedUsers);
  const known = new Map(stored.map((record) => [record.userId, record] as const));
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
  const users = stored.map((record) => batchUser(record, record));
  let unknown = 0;
  for (const [userId, holder] of held) {
    if (known.has(userId)) continue;
    unknown += 1;
    users.push(batchUser(unknownRecord(userId, holder.userName), undefined));
  }
  return { users, unknown };
};

const countPlanned = (planned: Plan, reports: Map<string, TargetReport>): void => {
  for (const call of planned.calls) {
    const report = reportOf(reports, call.target);
    report.planned[call.action] += call.changes.length;
  }
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

/** Users with a successful call: the only ones whose store record a concurrent event can race. */
const usersWithDoneCalls = (calls: readonly CallResult[]): Set<string> => {
  const users = new Set<string>();
  for (const result of calls)
    if (result.outcome === 'done') for (const change of result.call.changes) users.add(change.userId);
  return users;
};

/**
 * Runs one reconcile. Throws (a `StoreError`) only when the membership store cannot be listed;
 * every other failure is in the report (`ok: false`).
 *
 * SWR is read before the store: whatever an event changes meanwhile, the store the plan uses is
 * at least as new as the permissions it compares with. Users given or losing access are then
 * re-read from the store; a record that moved (a concurrent join, leave or offboarding) is
 * planned again, so no grant of the run survives an offboarding.
 *
 * @example
 * const report = await runReconcile(
 *   { swr, store, policy, log, metrics, now: () => new Date() },
 *   { dryRun: false, allowMassRevoke: false, massRevoke: { maxCount: 50, maxShare: 0.2 }, concurrency: 8, deadline },
 * );
 * console.log(formatReconcileTable(report));
 */
const runReconcile = async (deps: ReconcileDeps, options: ReconcileOptions): Promise<ReconcileReport> => {
  const { policy, log, metrics } = deps;
  const actor = options.actor ?? 'reconcile';
  const startedAt = deps.now();
  const targets = allPolicyTargets(policy);
  const exclusive = exclusiveTargetKeys(policy);
  const reports = new Map<string, TargetReport>(
    targets.map((target) => [targetKey(target), newTargetReport(target, exclusive.has(targetKey(target)))]),
  );
  const problems: ReconcileReport['problems'] = [];
  const changes: AuditRecord[] = [];

  // 1. What SWR has, then 2. who the store knows (in that order: see above).
  const first = await readTargets(targets, deps.swr, options.concurrency, options.deadline);
  for (const [key, access] of first.actual) (reports.get(key) as TargetReport).found = foundOf(access);
  for (const [key, error] of first.readErrors)
    (reports.get(key) as TargetReport).skipped = { code: error.code, reason: error.message };
  const stored = await listStore(deps.store, startedAt, options.dryRun);

  // 3. Plan every user at once: calls coalesce across users, as in a queue batch.
  const { users, unknown } = reconcileUsers(stored, targets, first.actual, policy, exclusive);
  const planned = plan({ users, policy, actual: first.actual, now: deps.now() });
  countPlanned(planned, reports);

  // 4. The mass-revoke guard looks at the first plan: the one a broken policy would produce.
  const revokes = planned.calls.reduce(
    (sum, call) => sum + (call.action === 'revoke' ? call.changes.length : 0),
    0,
  );
  const found = [...first.actual.values()].reduce((sum, access) => sum + foundOf(access).users, 0);
  const guard = checkMassRevoke({ revokes, found }, options.massRevoke, options.allowMassRevoke);
  const blocked = guard.status === GuardStatuses.blocked;
  if (blocked && !options.dryRun) {
    metrics.count(MetricNames.massRevokeBlocked);
    log.error('mass revoke blocked: reconcile applied nothing', {
      alarm: 'mass-revoke',
      revokes,
      found,
      share: guard.share,
      maxCount: guard.maxCount,
      maxShare: guard.maxShare,
      reason: guard.reason,
    });
  } else if (blocked)
    log.warn('mass revoke would be blocked (dry run)', { revokes, found, reason: guard.reason });
  else if (guard.status === GuardStatuses.overridden)
    log.warn('mass revoke allowed by override', { actor, revokes, found, reason: guard.reason });

  // 5. Execute; then plan again for users whose record moved meanwhile.
  let replanned = 0;
  if (!blocked) {
    let round: BatchUser[] = users;
    let roundPlan = planned;
    const maxReplans = options.maxReplans ?? defaultMaxReplans;
    for (let attempt = 0; ; attempt += 1) {
      const result = await execute(
        roundPlan,
        { swr: deps.swr, now: () => deps.now().getTime() },
        { concurrency: options.concurrency, deadline: options.deadline, dryRun: options.dryRun },
      );
      for (const call of result.calls) {
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
          continue;
        }
        if (call.outcome === 'done') {
          if (call.call.action === 'grant') report.granted += count;
          else if (call.call.action === 'change') report.changed += count;
          else report.revoked += count;
          metrics.count(
            call.call.action === 'grant'
              ? MetricNames.grants
              : call.call.action === 'change'
                ? MetricNames.changes
                : MetricNames.revokes,
            count,
          );
        }
        for (const change of call.call.changes)
          changes.push({
            at: deps.now().toISOString(),
            actor,
            eventIds: [],
            sources: [],
            userId: change.userId,
            userName: change.userName,
            target: change.target,
            before: change.before,
            after: change.after,
            dryRun: options.dryRun,
          });
      }
      if (options.dryRun) break;

      const recheck = usersWithDoneCalls(result.calls);
      const moved: BatchUser[] = [];
      await mapLimit(
        round.filter((user) => recheck.has(user.userId)),
        options.concurrency,
        async (user) => {
          try {
            const current = await deps.store.get(user.userId);
            if (current !== undefined && current.version !== user.after.version)
              moved.push({ ...user, before: user.after, after: current });
          } catch (error) {
            const failure = asSyncError(error);
            problems.push({
              code: failure.code,
              reason: `user ${user.userId} could not be re-read from the store: ${failure.message}`,
            });
          }
        },
      );
      if (moved.length === 0) break;
      replanned += moved.length;
      log.info('store moved during reconcile; planning again', { users: moved.map((user) => user.userId) });
      if (attempt >= maxReplans || deps.now().getTime() >= options.deadline) {
        problems.push({
          code: ErrorCodes.conflict,
          reason: `${moved.length} user(s) kept changing during the run; the queue handlers or the next run finish them`,
        });
        break;
      }
      round = moved.sort((a, b) => (a.userId < b.userId ? -1 : 1));
      const again = await readTargets(
        touchedTargets(round, policy),
        deps.swr,
        options.concurrency,
        options.deadline,
      );
      for (const [key, error] of again.readErrors) {
        const report = reports.get(key);
        report?.errors.push({
          action: 'read',
          code: error.code,
          reason: error.message,
          retryable: error.retryable,
          users: 0,
        });
      }
      roundPlan = plan({ users: round, policy, actual: again.actual, now: deps.now() });
      countPlanned(roundPlan, reports);
    }
  }

  for (const change of changes) log.info('access changed', auditLogAttributes(change));
  if (deps.audit !== undefined && changes.length > 0)
    await deps.audit(changes).catch((error: unknown) =>
      log.error('audit records could not be stored; they are in this log', {
        error: asSyncError(error).message,
      }),
    );

  const finishedAt = deps.now();
  const targetReports = [...reports.values()];
  const totals = totalsOf(targetReports);
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
    guard,
    replanned,
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

/**
 * What a reconcile run found and did, per target and in total: one JSON log record for
 * machines, and an aligned table for people (the CLI).
 */
import type { PlanAction, Target, TargetAccess } from '../domain.ts';
import { targetKey } from '../domain.ts';
import type { AuditRecord } from '../observability.ts';
import { formatShare, type GuardReport, GuardStatuses } from './guard.ts';

/** Users found on a target, and how many hold each level. */
interface FoundCounts {
  users: number;
  read: number;
  write: number;
  manage: number;
}

interface ActionCounts {
  grant: number;
  change: number;
  revoke: number;
}

/** A failure on one target: a call that failed, or a read that failed while re-planning. */
interface TargetError {
  action: PlanAction | 'read';
  code: string;
  reason: string;
  retryable: boolean;
  /** Users the failed call carried (none for a read). */
  users: number;
}

interface TargetReport {
  target: Target;
  key: string;
  /** The policy marks the target exclusive: grants no team gives are removed, whoever holds them. */
  exclusive: boolean;
  /** What SWR reported (the caller itself not counted); `undefined` when the read failed. */
  found: FoundCounts | undefined;
  /** What the run decided (whether or not it was applied). */
  planned: ActionCounts;
  /** Users granted, changed, revoked by calls that succeeded (0 in a dry or blocked run). */
  granted: number;
  changed: number;
  revoked: number;
  /** Users whose call failed. */
  failed: number;
  /** Set when the target could not be read: nothing was planned there. */
  skipped?: { code: string; reason: string };
  errors: TargetError[];
}

interface ReconcileTotals {
  targets: number;
  skipped: number;
  /** Grants found on the targets that could be read. */
  found: number;
  planned: ActionCounts;
  granted: number;
  changed: number;
  revoked: number;
  failed: number;
}

interface ReconcileReport {
  actor: string;
  dryRun: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  policyFile: string;
  users: {
    /** Users in the membership store. */
    stored: number;
    /** Users the store does not know who hold a grant on an exclusive target (stale grants). */
    unknownOnExclusive: number;
  };
  targets: TargetReport[];
  totals: ReconcileTotals;
  guard: GuardReport;
  /** Users planned again because their store record moved while the run applied its plan. */
  replanned: number;
  /** Problems not tied to one target (e.g. the store could not be re-read). */
  problems: Array<{ code: string; reason: string }>;
  /** Nothing skipped, nothing failed, not blocked. */
  ok: boolean;
  /** Every change applied (or, in a dry run, planned), as audit records. */
  changes: AuditRecord[];
}

const emptyActions = (): ActionCounts => ({ grant: 0, change: 0, revoke: 0 });

/** Counts users and levels on one target, without the caller itself. */
const foundOf = (access: TargetAccess): FoundCounts => {
  const counts: FoundCounts = { users: 0, read: 0, write: 0, manage: 0 };
  for (const user of access.users) {
    if (user.user_id === access.selfUserId) continue;
    counts.users += 1;
    if (user.auth === 7) counts.manage += 1;
    else if (user.auth === 3) counts.write += 1;
    else counts.read += 1;
  }
  return counts;
};

const newTargetReport = (target: Target, exclusive: boolean): TargetReport => ({
  target,
  key: targetKey(target),
  exclusive,
  found: undefined,
  planned: emptyActions(),
  granted: 0,
  changed: 0,
  revoked: 0,
  failed: 0,
  errors: [],
});

const totalsOf = (targets: readonly TargetReport[]): ReconcileTotals => {
  const totals: ReconcileTotals = {
    targets: targets.length,
    skipped: 0,
    found: 0,
    planned: emptyActions(),
    granted: 0,
    changed: 0,
    revoked: 0,
    failed: 0,
  };
  for (const target of targets) {
    if (target.skipped !== undefined) totals.skipped += 1;
    totals.found += target.found?.users ?? 0;
    totals.planned.grant += target.planned.grant;
    totals.planned.change += target.planned.change;
    totals.planned.revoke += target.planned.revoke;
    totals.granted += target.granted;
    totals.changed += target.changed;
    totals.revoked += target.revoked;
    totals.failed += target.failed;
  }
  return totals;
};

/**
 * The report without the per-change audit records (they are logged one by one): what the
 * run's single JSON log record and the function's answer carry.
 *
 * @example log.info('reconcile done', reconcileLogAttributes(report));
 */
const reconcileLogAttributes = (report: ReconcileReport): Record<string, unknown> => {
  const { changes: _changes, ...rest } = report;
  return { reconcile: rest };
};

/**
 * A short answer for the Lambda invocation: totals, guard and the keys of the targets that
 * need attention.
 *
 * @example return reconcileSummary(report);
 */
const reconcileSummary = (report: ReconcileReport) => ({
  ok: report.ok,
  dryRun: report.dryRun,
  durationMs: report.durationMs,
  guard: report.guard,
  totals: report.totals,
  users: report.users,
  replanned: report.replanned,
  skippedTargets: report.targets.filter((target) => target.skipped !== undefined).map((target) => target.key),
  failedTargets: report.targets.filter((target) => target.failed > 0).map((target) => target.key),
  problems: report.problems,
});

type Align = 'left' | 'right';

const renderTable = (header: readonly string[], rows: readonly string[][], align: readonly Align[]) => {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => {
        const width = widths[column] ?? 0;
        return align[column] === 'right' ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)];
};

const statusOf = (target: TargetReport, report: ReconcileReport): string => {
  if (target.skipped !== undefined) return `skipped: ${target.skipped.code} ${target.skipped.reason}`;
  const failure = target.errors[0];
  if (failure !== undefined) return `failed: ${failure.code} ${failure.reason}`;
  const planned = target.planned.grant + target.planned.change + target.planned.revoke;
  if (planned === 0) return 'in sync';
  if (report.guard.status === GuardStatuses.blocked) return 'not applied (guard)';
  if (report.dryRun) return 'not applied (dry run)';
  return 'fixed';
};

/**
 * The report as an aligned plain-text table: one row per target, then totals and the guard.
 * In a dry or blocked run, the grant/change/revoke columns show what was planned.
 *
 * @example console.log(formatReconcileTable(report));
 */
const formatReconcileTable = (report: ReconcileReport): string => {
  const applied = !report.dryRun && report.guard.status !== GuardStatuses.blocked;
  const counts = (target: Pick<TargetReport, 'planned' | 'granted' | 'changed' | 'revoked'>) =>
    applied
      ? [target.granted, target.changed, target.revoked]
      : [target.planned.grant, target.planned.change, target.planned.revoke];
  const header = [
    'TARGET',
    'KIND',
    'EXCL',
    'FOUND',
    'R/W/M',
    'GRANT',
    'CHANGE',
    'REVOKE',
    'FAILED',
    'STATUS',
  ];
  const align: Align[] = [
    'left',
    'left',
    'left',
    'right',
    'right',
    'right',
    'right',
    'right',
    'right',
    'left',
  ];
  const rows = report.targets.map((target) => [
    target.key,
    target.target.kind === 'repo' ? 'repo' : 'namespace',
    target.exclusive ? 'yes' : '',
    target.found === undefined ? '-' : String(target.found.users),
    target.found === undefined ? '-' : `${target.found.read}/${target.found.write}/${target.found.manage}`,
    ...counts(target).map(String),
    String(target.failed),
    statusOf(target, report),
  ]);
  const { totals } = report;
  rows.push([
    `TOTAL (${totals.targets} targets)`,
    '',
    '',
    String(totals.found),
    '',
    ...counts({
      planned: totals.planned,
      granted: totals.granted,
      changed: totals.changed,
      revoked: totals.revoked,
    }).map(String),
    String(totals.failed),
    totals.skipped > 0 ? `${totals.skipped} skipped` : '',
  ]);
  const { guard } = report;
  const guardLine =
    guard.status === GuardStatuses.ok
      ? `guard: ok (${guard.revokes} revocations, ${formatShare(guard.share)} of ${guard.found} grants, and ${guard.decided} decided by offboardings or expiries; limits ${guard.maxCount} / ${formatShare(guard.maxShare)} above ${guard.floor ?? 0})`
      : `guard: ${guard.status.toUpperCase()}${guard.status === GuardStatuses.blocked ? ' (nothing was applied)' : ''}: ${guard.reason ?? ''}`;
  const mode = report.dryRun
    ? 'dry run: counts are planned, nothing was applied'
    : applied
      ? 'applied'
      : 'blocked: counts are planned, nothing was applied';
  return [
    `reconcile ${report.startedAt} by ${report.actor} (${mode}), policy ${report.policyFile}`,
    ...renderTable(header, rows, align),
    guardLine,
    `users: ${report.users.stored} stored, ${report.users.unknownOnExclusive} unknown with grants on exclusive targets; replanned ${report.replanned}`,
    ...report.problems.map((problem) => `problem: ${problem.code} ${problem.reason}`),
    `duration: ${report.durationMs} ms; ${report.ok ? 'OK' : 'NOT OK'}`,
    'Only targets in the policy are reconciled: a target removed from the policy keeps its grants.',
  ].join('\n');
};

export type { ActionCounts, FoundCounts, ReconcileReport, ReconcileTotals, TargetError, TargetReport };
export {
  emptyActions,
  formatReconcileTable,
  foundOf,
  newTargetReport,
  reconcileLogAttributes,
  reconcileSummary,
  totalsOf,
};

/** Reconcile: the scheduled repair of drift, its report, the mass-revoke guard. */
export type { GuardReport, GuardStatus, MassRevokeLimits } from './guard.ts';
export { checkMassRevoke, GuardStatuses } from './guard.ts';
export type { ReconcileDeps, ReconcileOptions } from './reconcile.ts';
export { runReconcile } from './reconcile.ts';
export type { FoundCounts, ReconcileReport, ReconcileTotals, TargetError, TargetReport } from './report.ts';
export { formatReconcileTable, reconcileLogAttributes, reconcileSummary } from './report.ts';
export type { ReconcileRuntime, ReconcileSettings } from './runtime.ts';
export { createReconcileRuntime } from './runtime.ts';

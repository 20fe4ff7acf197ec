/**
 * The metrics one reconcile run leaves behind, beside its report: what the alarms on reconcile
 * errors and skipped targets read. Counted on every run, 0 included, so that an alarm sees data
 * points and a run that could not start is told apart from a clean one.
 */
import { MetricNames, type MetricsSink } from '../observability.ts';
import type { ReconcileReport } from './report.ts';

/**
 * Failed calls and failed re-reads on every target, plus problems not tied to one target. A
 * skipped target (its first read failed) is counted apart, as `ReconcileSkippedTargets`.
 *
 * @example reconcileErrorCount(report) // 0 for a clean run
 */
const reconcileErrorCount = (report: Pick<ReconcileReport, 'targets' | 'problems'>): number =>
  report.targets.reduce((sum, target) => sum + target.errors.length, 0) + report.problems.length;

/**
 * @example recordReconcileMetrics(runtime.metrics, report);
 */
const recordReconcileMetrics = (metrics: MetricsSink, report: ReconcileReport): void => {
  metrics.count(MetricNames.reconcileErrors, reconcileErrorCount(report));
  metrics.count(MetricNames.reconcileSkippedTargets, report.totals.skipped);
};

/** A run that could not start (configuration, policy, store unreadable) is one reconcile error. */
const recordReconcileCrash = (metrics: MetricsSink): void => {
  metrics.count(MetricNames.reconcileErrors, 1);
};

export { reconcileErrorCount, recordReconcileCrash, recordReconcileMetrics };

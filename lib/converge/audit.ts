/** The audit records of the calls a converge made: one per user moved, with why. */
import type { CallResult } from '../core/executor.ts';
import type { AuditRecord } from '../observability.ts';
import { MetricNames, type MetricsSink } from '../observability.ts';

interface AuditContext {
  actor: string;
  dryRun: boolean;
  at: Date;
  /** Event id → the producer's `source`. */
  sources?: ReadonlyMap<string, string>;
}

/**
 * Every change of a call that was made (or, in a dry run, would have been): failed calls change
 * nothing and are not audited.
 *
 * @example const records = auditRecordsOf(result.calls, { actor: 'sync', dryRun: false, at: new Date() });
 */
const auditRecordsOf = (calls: readonly CallResult[], context: AuditContext): AuditRecord[] =>
  calls
    .filter((result) => result.outcome !== 'failed')
    .flatMap((result) =>
      result.call.changes.map((change) => ({
        at: context.at.toISOString(),
        actor: context.actor,
        eventIds: change.eventIds,
        sources: [...new Set(change.eventIds.flatMap((id) => context.sources?.get(id) ?? []))],
        userId: change.userId,
        userName: change.userName,
        target: change.target,
        before: change.before,
        after: change.after,
        dryRun: context.dryRun,
        reason: `${change.reason.kind}: ${change.reason.detail}`,
      })),
    );

const metricOf = {
  grant: MetricNames.grants,
  change: MetricNames.changes,
  revoke: MetricNames.revokes,
} as const;

/** Counts the users granted, changed and revoked by calls that were made. */
const countCalls = (calls: readonly CallResult[], metrics: MetricsSink): void => {
  for (const result of calls)
    if (result.outcome === 'done') metrics.count(metricOf[result.call.action], result.call.changes.length);
};

export type { AuditContext };
export { auditRecordsOf, countCalls };

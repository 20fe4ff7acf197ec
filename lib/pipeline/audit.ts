/** Stage 6: every change in the log and, durably, in the audit trail; a failure here is logged. */
import { type AuditRecord, auditLogAttributes } from '../observability.ts';
import { asSyncError } from '../read-targets.ts';
import type { PipelineDeps } from './types.ts';

/** @example await auditStage(changes, deps, answerBy); */
const auditStage = async (
  changes: readonly AuditRecord[],
  deps: PipelineDeps,
  deadline: number,
): Promise<void> => {
  for (const change of changes) deps.log.info('access changed', auditLogAttributes(change));
  // A dry run's changes are in the log only: the durable trail holds what happened.
  const done = changes.filter((change) => !change.dryRun);
  if (deps.audit === undefined || done.length === 0) return;
  await deps.audit(done, { deadline }).catch((error: unknown) =>
    deps.log.error('audit records could not be stored; they are in this log', {
      error: asSyncError(error).message,
    }),
  );
};

export { auditStage };

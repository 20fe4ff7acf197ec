/**
 * The one pipeline behind both queue handlers (and the CLI's `plan` and `apply`), as named
 * stages over one batch:
 *   parse → resolve → record → apply (converge on known targets) → sweep (offboardings) → audit → answer
 * The sweep runs inline, or is requested on the sweep queue when the deps have one
 * (`sweepRequests`); that queue's batches go through `processSweepRequests`, the same sweep routine.
 * Every stage works per message: one bad message never fails its batch, and a message that
 * cannot be finished is retried or dead-lettered with its reason, never dropped. Reads that fail
 * are never taken for "nothing there", and a change SWR acknowledges counts only once a read-back
 * shows it.
 */
import { MetricNames } from './observability.ts';
import { answerStage } from './pipeline/answer.ts';
import { applyStage } from './pipeline/apply.ts';
import { auditStage } from './pipeline/audit.ts';
import { BatchState } from './pipeline/batch-state.ts';
import { parseStage } from './pipeline/parse.ts';
import { recordStage } from './pipeline/record.ts';
import { resolveStage } from './pipeline/resolve.ts';
import { sweepStage } from './pipeline/sweep.ts';
import type { BatchReport, PipelineDeps, PipelineRecord, PipelineSettings } from './pipeline/types.ts';

const defaultAnswerGraceMs = 2_000;

/**
 * Runs one batch through the pipeline and answers SQS. Never throws for a message's sake; the
 * caller still wraps it so that an unexpected crash lists every message (see `failEverything`).
 *
 * @example
 * const report = await processRecords(records, deps, { actor: 'sync', concurrency: 8, dryRun: false }, deadline);
 * return report.response;
 */
const processRecords = async (
  records: readonly PipelineRecord[],
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<BatchReport> => {
  const batch = new BatchState(records);
  deps.metrics.count(MetricNames.messagesIn, records.length);
  const events = parseStage(batch, deps.now(), settings);
  const resolved = await resolveStage(batch, events, deps, settings, deadline);
  const recorded = await recordStage(batch, resolved, deps, settings, deadline);
  const applied = await applyStage(batch, recorded, deps, settings, deadline);
  const swept = await sweepStage(batch, recorded, applied.reads, deps, settings, deadline);
  const changes = [...applied.changes, ...swept.changes];
  const answerBy = deadline + (settings.answerGraceMs ?? defaultAnswerGraceMs);
  await auditStage(changes, deps, answerBy);
  return answerStage(batch, events, changes, swept.proofs, deps, settings, answerBy);
};

export { processSweepRequests } from './pipeline/sweep-requests.ts';
export type {
  BatchReport,
  MessageFailure,
  PipelineDeps,
  PipelineRecord,
  PipelineSettings,
} from './pipeline/types.ts';
export { asSyncError } from './read-targets.ts';
export { processRecords };

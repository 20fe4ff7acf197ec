/**
 * The Lambda side of the pipeline: SQS records in, `{ batchItemFailures }` out. Whatever goes
 * wrong outside the per-message handling (start-up, a bug), every message is listed, never none:
 * SQS then delivers them again instead of deleting them.
 */
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { failEverything } from './core/batch-response.ts';
import { flushMetrics } from './middleware.ts';
import type { Log, MetricsSink } from './observability.ts';
import {
  asSyncError,
  type BatchReport,
  type PipelineDeps,
  type PipelineRecord,
  type PipelineSettings,
  processRecords,
} from './pipeline.ts';

/** A queue's batch routine: `processRecords` (people events) or `processSweepRequests`. */
type BatchProcessor = (
  records: readonly PipelineRecord[],
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
) => Promise<BatchReport>;

/** What a queue handler needs; resolved once per cold start (credentials may come from Secrets Manager). */
interface QueueRuntime {
  /**
   * The deps and settings for a batch from `eventSourceArn` (a function may consume several
   * queues: each has its DLQ, receive limit and routine; default routine `processRecords`).
   */
  ready(eventSourceArn?: string): Promise<{
    deps: PipelineDeps;
    settings: PipelineSettings;
    safetyMarginMs: number;
    process?: BatchProcessor;
  }>;
  log: Log;
  metrics: MetricsSink;
}

const pipelineRecordOf = (record: SQSRecord): PipelineRecord => ({
  messageId: record.messageId,
  body: record.body,
  groupId: record.attributes.MessageGroupId,
  receiveCount: Number(record.attributes.ApproximateReceiveCount) || 1,
});

/**
 * @example export const handler = middy().handler((event, context) => handleSqsEvent(event, context, runtime));
 */
const handleSqsEvent = async (
  event: SQSEvent,
  context: Context,
  runtime: QueueRuntime,
): Promise<SQSBatchResponse> => {
  const records = (event.Records ?? []).map(pipelineRecordOf);
  try {
    // Lambda never mixes queues in one batch: the first record says which queue it came from.
    const ready = await runtime.ready(event.Records?.[0]?.eventSourceARN);
    const { deps, settings, safetyMarginMs, process = processRecords } = ready;
    const deadline = Date.now() + context.getRemainingTimeInMillis() - safetyMarginMs;
    const report = await process(records, deps, settings, deadline);
    runtime.log.info('batch done', {
      messages: records.length,
      applied: report.applied.length,
      retried: report.retried.length,
      deadLettered: report.deadLettered.length,
      undeliverable: report.undeliverable.length,
      changes: report.changes.length,
    });
    return report.response;
  } catch (error) {
    const failure = asSyncError(error);
    runtime.log.error('batch could not be handled; every message will be retried', {
      errorCode: failure.code,
      reason: failure.message,
      messages: records.length,
    });
    return failEverything(records);
  }
};

/**
 * The middy handler of a queue function: the same wiring for `sync` and `offboard`.
 *
 * @example export const handler = createSqsHandler(createQueueRuntime({ functionName: 'sync', queue: 'accessChanges' }));
 */
const createSqsHandler = (runtime: QueueRuntime) =>
  middy<SQSEvent, SQSBatchResponse, Error, Context>({ timeoutEarlyInMillis: 0 })
    .use(flushMetrics({ metrics: runtime.metrics }))
    .handler((event, context) => handleSqsEvent(event, context, runtime));

export type { BatchProcessor, QueueRuntime };
export { createSqsHandler, handleSqsEvent, pipelineRecordOf };

/**
 * The cold-start BASELINE: the smallest useful middy handler for an SQS event with partial batch
 * responses. Bundled with the same esbuild options as the real functions (bench/scenarios/coldstart.ts).
 */
import middy from '@middy/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';

export const handler = middy<SQSEvent, SQSBatchResponse, Error, Context>({ timeoutEarlyInMillis: 0 }).handler(
  async (event) => ({
    batchItemFailures: event.Records.filter((record) => record.body === '').map((record) => ({
      itemIdentifier: record.messageId,
    })),
  }),
);

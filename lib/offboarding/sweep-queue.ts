/**
 * Sends offboarding sweep requests to the `offboarding-sweeps` queue (standard: the sweep handler
 * reads it in large batches, so many leavers share one pass over the targets). Only what SQS lists
 * as sent counts: an entry in `Failed[]`, in neither list, or a call that failed is reported back,
 * and the offboarding message that needed it is retried — a sweep request is never lost.
 */
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { callAws } from '../aws.ts';
import { ErrorCodes, SyncError } from '../errors.ts';
import { redactSecrets } from '../redact.ts';
import { type SweepRequest, type SweepRequestPort, sweepRequestBody } from './requests.ts';

/** SendMessageBatch takes at most 10 entries. */
const entriesPerCall = 10;

const notSent = (request: SweepRequest, why: string): { userId: string; error: SyncError } => ({
  userId: request.userId,
  error: new SyncError(
    `the offboarding sweep request could not be queued (${redactSecrets(why)}); the known grants are revoked and the message is retried to queue it`,
    { code: ErrorCodes.network, retryable: true },
  ),
});

/**
 * @example
 * const sweeps = createSweepQueue({ sqs, queueUrl: config.sweepQueueUrl });
 * const { failed } = await sweeps.send([{ userId, offboardedAt }], { deadline });
 */
const createSweepQueue = (options: { sqs: SQSClient; queueUrl: string }): SweepRequestPort => ({
  async send(requests, callOptions) {
    // One request per user: a batch holding several messages of one leaver queues one sweep.
    const unique = [
      ...new Map(requests.map((request) => [`${request.userId} ${request.offboardedAt}`, request])).values(),
    ];
    const failed: Array<{ userId: string; error: SyncError }> = [];
    for (let start = 0; start < unique.length; start += entriesPerCall) {
      const chunk = unique.slice(start, start + entriesPerCall);
      try {
        const answer = await callAws('SQS SendMessageBatch (sweep requests)', callOptions, (abortSignal) =>
          options.sqs.send(
            new SendMessageBatchCommand({
              QueueUrl: options.queueUrl,
              Entries: chunk.map((request, index) => ({
                Id: String(index),
                MessageBody: sweepRequestBody(request),
              })),
            }),
            { abortSignal },
          ),
        );
        const refused = new Map((answer.Failed ?? []).map((entry) => [entry.Id, entry]));
        const sent = new Set((answer.Successful ?? []).map((entry) => entry.Id));
        chunk.forEach((request, index) => {
          const failure = refused.get(String(index));
          if (failure !== undefined)
            failed.push(notSent(request, `${failure.Code ?? 'unknown'}: ${failure.Message ?? 'no message'}`));
          else if (!sent.has(String(index))) failed.push(notSent(request, 'not reported as sent'));
        });
      } catch (error) {
        const why = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        for (const request of chunk) failed.push(notSent(request, why));
      }
    }
    return { failed };
  },
});

export { createSweepQueue };

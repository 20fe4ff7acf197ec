/**
 * An offboarding sweep request: what the queue handlers send to the `offboarding-sweeps` queue
 * once a leaver's known grants are revoked, and what the sweep handler reads back. It names the
 * user and the tombstone (`offboardedAt`): a request for a tombstone the store no longer holds (a
 * rehire, a later offboarding) is skipped, and a repeat for a finished sweep costs one progress
 * read, so duplicates need no de-duplication of their own. Pure: the SQS adapter is
 * `sweep-queue.ts`.
 */
import type { CallOptions } from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';
import * as z from '../zod.ts';

interface SweepRequest {
  userId: string;
  /** The tombstone the sweep is for, as the store holds it. */
  offboardedAt: string;
}

/** Where sweep requests go (the sweeps queue); a request listed in `failed` was not sent. */
interface SweepRequestPort {
  send(
    requests: readonly SweepRequest[],
    options?: CallOptions,
  ): Promise<{ failed: Array<{ userId: string; error: SyncError }> }>;
}

const requestKind = 'offboarding.sweep';

const requestSchema = z.strictObject({
  kind: z.literal(requestKind),
  userId: z.string().check(z.minLength(1), z.maxLength(128)),
  offboardedAt: z.string().check(z.minLength(1), z.maxLength(64)),
});

/** @example sweepRequestBody({ userId: 'fb3f…', offboardedAt: '2026-11-20T10:00:00.000Z' }) */
const sweepRequestBody = (request: SweepRequest): string =>
  JSON.stringify({ kind: requestKind, userId: request.userId, offboardedAt: request.offboardedAt });

/**
 * A body that is not a sweep request is a permanent failure (retrying cannot make it one).
 *
 * @example const parsed = parseSweepRequest(record.body); if (!parsed.ok) batch.fail(record.messageId, parsed.error);
 */
const parseSweepRequest = (
  body: string,
): { ok: true; request: SweepRequest } | { ok: false; error: SyncError } => {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return {
      ok: false,
      error: new SyncError('sweep request is not JSON', { code: ErrorCodes.invalidJson, retryable: false }),
    };
  }
  const parsed = requestSchema.safeParse(json);
  if (!parsed.success)
    return {
      ok: false,
      error: new SyncError(`not a sweep request: ${z.prettifyError(parsed.error)}`, {
        code: ErrorCodes.schema,
        retryable: false,
      }),
    };
  return { ok: true, request: { userId: parsed.data.userId, offboardedAt: parsed.data.offboardedAt } };
};

export type { SweepRequest, SweepRequestPort };
export { parseSweepRequest, sweepRequestBody };

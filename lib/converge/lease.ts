/**
 * Waiting for a converge lease: one attempt, then bounded polling with jitter until the lease is
 * had or too little of the batch's time is left to converge anything. The lease lives until the
 * holder's deadline plus a margin, so a holder that crashes (never releases) delays the others
 * only until then.
 */
import { randomUUID } from 'node:crypto';
import type { LeasePort } from '../domain.ts';
import { LeaseBusyError, type SyncError } from '../errors.ts';
import { asSyncError } from '../read-targets.ts';

interface LeaseWaitOptions {
  /** Absolute epoch ms: no attempt after it, and none once less than `minRemainingMs` is left. */
  deadline: number;
  /** Epoch ms the lease lives until if never released (the holder's deadline plus a margin). */
  expiresAt: number;
  /** Pause between attempts: uniformly between the two (ms). */
  pollMs?: readonly [number, number];
  /** Time a holder needs to converge anything; the wait ends when less is left (ms). */
  minRemainingMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

type LeaseWait =
  | { acquired: true; owner: string; waitedMs: number; attempts: number }
  | { acquired: false; waitedMs: number; attempts: number; error: SyncError };

/** 100–250 ms: a few DynamoDB writes per second per waiter, and a freed lease taken within ~¼ s. */
const defaultPollMs = [100, 250] as const;
const defaultMinRemainingMs = 1_000;

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Tries until the lease is had or the time is up. A store error counts as "not had yet" (the
 * next attempt may succeed); the last one is the cause of the error when the time runs out.
 *
 * @example
 * const wait = await waitForLease(lease, 'converge:access-changes', 'sync', { deadline, expiresAt: deadline + 3_000 });
 * if (!wait.acquired) for (const id of messageIds) batch.fail(id, wait.error);
 */
const waitForLease = async (
  port: LeasePort,
  name: string,
  ownerPrefix: string,
  options: LeaseWaitOptions,
): Promise<LeaseWait> => {
  const {
    deadline,
    expiresAt,
    pollMs = defaultPollMs,
    minRemainingMs = defaultMinRemainingMs,
    now = Date.now,
    sleep = pause,
    random = Math.random,
  } = options;
  // Unique per wait: a later batch of the same instance is another holder.
  const owner = `${ownerPrefix}:${randomUUID()}`;
  const startedAt = now();
  let attempts = 0;
  let lastError: SyncError | undefined;
  const lastUseful = deadline - minRemainingMs;
  while (now() <= lastUseful) {
    attempts += 1;
    try {
      if (await port.tryAcquire(name, owner, expiresAt, { deadline }))
        return { acquired: true, owner, waitedMs: now() - startedAt, attempts };
      lastError = undefined;
    } catch (error) {
      lastError = asSyncError(error);
    }
    const [low, high] = pollMs;
    const next = Math.min(Math.round(low + random() * (high - low)), lastUseful - now());
    if (next <= 0) break;
    await sleep(next);
  }
  const waitedMs = now() - startedAt;
  const why =
    attempts === 0
      ? `too little of the batch's time was left to converge under the lease ${name}`
      : lastError === undefined
        ? `another instance held the converge lease ${name} for the ${waitedMs} ms this batch could wait`
        : `the converge lease ${name} could not be acquired in ${waitedMs} ms (${lastError.code}: ${lastError.message})`;
  return {
    acquired: false,
    waitedMs,
    attempts,
    error: new LeaseBusyError(`${why}; its facts are recorded, SQS will deliver the message again`, {
      ...(lastError === undefined ? {} : { cause: lastError }),
    }),
  };
};

export type { LeaseWait, LeaseWaitOptions };
export { waitForLease };

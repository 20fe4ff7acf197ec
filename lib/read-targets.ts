/**
 * Reads the actual permissions of many targets at once. A target whose read fails is left out of
 * `actual` and its error kept: callers never plan a revoke on it (design rule 7).
 */
import type { SwrPermissionsPort, Target, TargetAccess } from './domain.ts';
import { targetKey } from './domain.ts';
import { ErrorCodes, SyncError } from './errors.ts';
import { mapLimit } from './pool.ts';

/** Any thrown value as a SyncError; unknown ones are retryable and described by name only. */
const asSyncError = (error: unknown): SyncError =>
  error instanceof SyncError
    ? error
    : new SyncError(`unexpected ${error instanceof Error ? error.name : typeof error}`, {
        code: ErrorCodes.crash,
        retryable: true,
        cause: error,
      });

interface TargetReads {
  /** By `targetKey`. */
  actual: Map<string, TargetAccess>;
  /** By `targetKey`: why a target could not be read. */
  readErrors: Map<string, SyncError>;
}

/** @example const { actual, readErrors } = await readTargets(targets, swr, 8, deadline); */
const readTargets = async (
  targets: readonly Target[],
  swr: SwrPermissionsPort,
  concurrency: number,
  deadline: number,
): Promise<TargetReads> => {
  const actual = new Map<string, TargetAccess>();
  const readErrors = new Map<string, SyncError>();
  await mapLimit(targets, concurrency, async (target) => {
    try {
      actual.set(targetKey(target), await swr.getAccess(target, { deadline }));
    } catch (error) {
      readErrors.set(targetKey(target), asSyncError(error));
    }
  });
  return { actual, readErrors };
};

export type { TargetReads };
export { asSyncError, readTargets };

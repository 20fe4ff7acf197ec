/**
 * Whether the writes SWR acknowledged really happened: a 2xx is not proof (a proxy page, a write
 * that did nothing). After a round of calls the touched targets are read again, and every change
 * of a call that succeeded is compared with what SWR now reports. Pure.
 */
import type { AuthLevel, PlannedChange, TargetAccess } from '../domain.ts';
import { targetKey } from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';

interface Unverified {
  change: PlannedChange;
  error: SyncError;
}

const levelText = (level: AuthLevel | undefined): string => (level === undefined ? 'none' : String(level));

/**
 * The changes among `done` whose effect the read-back does not show, each with a retryable error
 * that says what was expected and what SWR reports (or why it could not be read back).
 *
 * @example
 * const failed = unverifiedChanges(doneChanges, readBack.actual, readBack.readErrors);
 * for (const { change, error } of failed) retry(change.messageIds, error);
 */
const unverifiedChanges = (
  done: readonly PlannedChange[],
  readBack: ReadonlyMap<string, TargetAccess>,
  readErrors: ReadonlyMap<string, SyncError>,
): Unverified[] => {
  const failed: Unverified[] = [];
  for (const change of done) {
    const key = targetKey(change.target);
    const access = readBack.get(key);
    if (access === undefined) {
      const why = readErrors.get(key)?.message ?? 'the read-back failed';
      failed.push({
        change,
        error: new SyncError(
          `${change.action} on ${key} was answered 2xx but could not be read back: ${why}`,
          {
            code: ErrorCodes.unverified,
            retryable: true,
            target: key,
            cause: readErrors.get(key),
          },
        ),
      });
      continue;
    }
    const seen = access.users.find((entry) => entry.user_id === change.userId)?.auth;
    if (seen === change.after) continue;
    failed.push({
      change,
      error: new SyncError(
        `${change.action} on ${key} was answered 2xx but SWR shows ${levelText(seen)} for user ${change.userId}, not ${levelText(change.after)}`,
        { code: ErrorCodes.notEffective, retryable: true, target: key },
      ),
    });
  }
  return failed;
};

export type { Unverified };
export { unverifiedChanges };

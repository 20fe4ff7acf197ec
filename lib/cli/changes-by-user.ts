/**
 * A run's changes grouped by user: who is affected and what changes for each, on which target,
 * from which level to which, and why. `reconcile --dry-run --policy NEW` prints it as the preview
 * of a policy change; an applied run prints what it did.
 */
import { type AuthLevel, permissionOfLevel, targetKey } from '../domain.ts';
import type { AuditRecord } from '../observability.ts';
import { table } from './io.ts';

type LevelName = 'read' | 'write' | 'manage' | null;

interface UserChanges {
  userId: string;
  userName: string;
  changes: Array<{
    target: string;
    targetKind: 'repo' | 'namespace';
    action: 'grant' | 'change' | 'revoke';
    before: LevelName;
    after: LevelName;
    reason: string | null;
  }>;
}

const levelName = (level: AuthLevel | undefined): LevelName =>
  level === undefined ? null : permissionOfLevel(level);

const actionOf = (record: AuditRecord): 'grant' | 'change' | 'revoke' =>
  record.before === undefined ? 'grant' : record.after === undefined ? 'revoke' : 'change';

/**
 * @example changesByUser(report.changes)[0] // { userName: 'alice', changes: [{ target: 'core/api/server', action: 'revoke', … }] }
 */
const changesByUser = (records: readonly AuditRecord[]): UserChanges[] => {
  const users = new Map<string, UserChanges>();
  for (const record of records) {
    const user = users.get(record.userId) ?? {
      userId: record.userId,
      userName: record.userName,
      changes: [],
    };
    user.changes.push({
      target: targetKey(record.target),
      targetKind: record.target.kind,
      action: actionOf(record),
      before: levelName(record.before),
      after: levelName(record.after),
      reason: record.reason ?? null,
    });
    users.set(record.userId, user);
  }
  const byName = (a: UserChanges, b: UserChanges) =>
    a.userName.localeCompare(b.userName) || (a.userId < b.userId ? -1 : 1);
  for (const user of users.values()) user.changes.sort((a, b) => a.target.localeCompare(b.target));
  return [...users.values()].sort(byName);
};

/**
 * The users as text: one row per change, the user named on their first row.
 *
 * @example changesByUserLines(changesByUser(report.changes), 'would change')
 */
const changesByUserLines = (users: readonly UserChanges[], verb: string): string[] => {
  if (users.length === 0) return [`users affected: none (nothing ${verb})`];
  const rows = users.flatMap((user) =>
    user.changes.map((change, index) => [
      index === 0 ? `${user.userName} (${user.userId})` : '',
      change.target,
      change.action,
      `${change.before ?? 'none'} → ${change.after ?? 'none'}`,
      change.reason ?? '-',
    ]),
  );
  return [
    `users affected: ${users.length}; what ${verb} for each:`,
    ...table([['USER', 'TARGET', 'ACTION', 'CHANGE', 'WHY'], ...rows]).map((row) => `  ${row}`),
  ];
};

export type { UserChanges };
export { changesByUser, changesByUserLines };

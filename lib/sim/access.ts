/**
 * The meaning of POST (grant), PATCH (change) and DELETE (revoke) on one target's grants.
 * POST and PATCH are atomic: a single offending user makes the whole call fail and nothing
 * changes. DELETE of a user who holds nothing either fails with 404 after revoking the
 * others (`revokeMissing: '404'`, so a client must treat that 404 as done) or passes silently.
 */
import type { Target, UserAuth } from '../domain.ts';
import { type Failure, failure } from './replies.ts';
import type { Holdings } from './world.ts';

type RevokeMissing = '404' | '204';

const codes = {
  repo: { exists: 'SVCSTG.SWR.4090089', missing: 'SVCSTG.SWR.4040091' },
  namespace: { exists: 'SVCSTG.SWR.4090076', missing: 'SVCSTG.SWR.4040078' },
} as const;

const where = (target: Target): string =>
  target.kind === 'repo'
    ? `repository ${target.namespace}/${target.repository}`
    : `namespace ${target.namespace}`;

const grantAll = (holdings: Holdings, target: Target, users: UserAuth[]): Failure | undefined => {
  const existing = users.filter((user) => holdings.has(user.user_id));
  if (existing.length > 0)
    return failure(
      409,
      codes[target.kind].exists,
      `permission on ${where(target)} already exists for ${existing.map((u) => u.user_id).join(', ')}`,
    );
  for (const user of users) holdings.set(user.user_id, { auth: user.auth, userName: user.user_name });
  return undefined;
};

const changeAll = (holdings: Holdings, target: Target, users: UserAuth[]): Failure | undefined => {
  const missing = users.filter((user) => !holdings.has(user.user_id));
  if (missing.length > 0)
    return failure(
      404,
      codes[target.kind].missing,
      `no permission on ${where(target)} for ${missing.map((u) => u.user_id).join(', ')}`,
    );
  for (const user of users) holdings.set(user.user_id, { auth: user.auth, userName: user.user_name });
  return undefined;
};

const revokeAll = (
  holdings: Holdings,
  target: Target,
  userIds: string[],
  revokeMissing: RevokeMissing,
): Failure | undefined => {
  const missing = userIds.filter((id) => !holdings.has(id));
  for (const id of userIds) holdings.delete(id);
  if (missing.length === 0 || revokeMissing === '204') return undefined;
  return failure(
    404,
    codes[target.kind].missing,
    `no permission on ${where(target)} for ${missing.join(', ')}`,
  );
};

export type { RevokeMissing };
export { changeAll, grantAll, revokeAll };

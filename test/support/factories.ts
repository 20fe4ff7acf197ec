/**
 * Fixture factories for the core: plain Policy, UserRecord, BatchUser and TargetAccess values,
 * built from short descriptions so each test states only what matters to it.
 */
import type { BatchUser } from '../../lib/core/planner.ts';
import type {
  AuthLevel,
  PermissionName,
  Policy,
  PolicyGrant,
  Target,
  TargetAccess,
  TeamFact,
  UserRecord,
} from '../../lib/domain.ts';
import { AuthLevels } from '../../lib/domain.ts';

/** A valid IAM user id (32 lowercase hex) that reads back as its number: `userId(7)` ends in `07`. */
const userId = (n: number): string => n.toString(16).padStart(32, '0');

/** `'core/api/server'` → repository target; `'tools'` → namespace target. */
const target = (spec: string): Target => {
  const slash = spec.indexOf('/');
  return slash === -1
    ? { kind: 'namespace', namespace: spec }
    : { kind: 'repo', namespace: spec.slice(0, slash), repository: spec.slice(slash + 1) };
};

/** `grant('core/api/server', 'write')`. */
const grant = (spec: string, permission: PermissionName, exclusive = false): PolicyGrant => ({
  target: target(spec),
  permission,
  level: AuthLevels[permission],
  exclusive,
});

/** `policyFactory({ teams: { platform: { 'core/api/server': 'write' } } })`. */
const policyFactory = (
  options: { teams?: Record<string, Record<string, PermissionName>>; protectedUsers?: string[] } = {},
): Policy => ({
  version: 1,
  sourcePath: 'test/policy.yaml',
  protectedUsers: options.protectedUsers ?? [],
  managedNamespaces: [],
  teams: Object.fromEntries(
    Object.entries(options.teams ?? {}).map(([team, grants]) => [
      team,
      Object.entries(grants).map(([spec, permission]) => grant(spec, permission)),
    ]),
  ),
});

/** `userRecordFactory({ id: 1, teams: { platform: true, data: false } })`: true = current member. */
const userRecordFactory = (options: {
  id: number;
  teams?: Record<string, boolean>;
  offboardedAt?: string;
  version?: number;
  at?: string;
}): UserRecord => {
  const at = options.at ?? '2026-11-20T10:00:00Z';
  const teams: Record<string, TeamFact> = Object.fromEntries(
    Object.entries(options.teams ?? {}).map(([team, member]) => [
      team,
      { member, at, eventId: `ev-${team}` },
    ]),
  );
  return {
    userId: userId(options.id),
    userName: `user${options.id}`,
    teams,
    ...(options.offboardedAt === undefined ? {} : { offboardedAt: options.offboardedAt }),
    version: options.version ?? 1,
  };
};

/** A batch user whose record goes from `before` to `after`; messages default to `m-<id>`. */
const batchUserFactory = (options: {
  id: number;
  before?: Record<string, boolean>;
  after: Record<string, boolean>;
  offboardedAt?: string;
  offboardingInBatch?: boolean;
  messageIds?: string[];
  eventIds?: string[];
}): BatchUser => {
  const offboarded = options.offboardedAt === undefined ? {} : { offboardedAt: options.offboardedAt };
  return {
    userId: userId(options.id),
    userName: `user${options.id}`,
    before:
      options.before === undefined ? undefined : userRecordFactory({ id: options.id, teams: options.before }),
    after: userRecordFactory({ id: options.id, teams: options.after, ...offboarded, version: 2 }),
    messageIds: options.messageIds ?? [`m-${options.id}`],
    eventIds: options.eventIds ?? [`e-${options.id}`],
    offboardingInBatch: options.offboardingInBatch ?? false,
  };
};

/** What SWR reports for one target: `accessFactory({ 1: 'write', 2: 'read' }, 99)` (99 = self). */
const accessFactory = (users: Record<number, PermissionName> = {}, self?: number): TargetAccess => ({
  selfUserId: self === undefined ? undefined : userId(self),
  users: Object.entries(users).map(([n, permission]) => ({
    user_id: userId(Number(n)),
    user_name: `user${n}`,
    auth: AuthLevels[permission] as AuthLevel,
  })),
});

/** `actualFactory({ 'core/api/server': { 1: 'write' }, tools: {} })`: every listed target readable. */
const actualFactory = (
  targets: Record<string, Record<number, PermissionName>>,
  self?: number,
): Map<string, TargetAccess> =>
  new Map(Object.entries(targets).map(([spec, users]) => [spec, accessFactory(users, self)]));

export {
  accessFactory,
  actualFactory,
  batchUserFactory,
  grant,
  policyFactory,
  target,
  userId,
  userRecordFactory,
};

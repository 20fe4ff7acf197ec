/**
 * The words of the product (see shared/docs/design.md) as types shared by every module.
 * Nothing here does I/O.
 */

/** SWR permission levels on the wire: 7 Manage, 3 Write (edit), 1 Read. */
const AuthLevels = { read: 1, write: 3, manage: 7 } as const;

type PermissionName = keyof typeof AuthLevels;
type AuthLevel = (typeof AuthLevels)[PermissionName];

const permissionOfLevel = (level: AuthLevel): PermissionName =>
  level === 7 ? 'manage' : level === 3 ? 'write' : 'read';

/** One entry of the SWR permission array (POST/PATCH body, GET answer). */
interface UserAuth {
  user_id: string;
  user_name: string;
  auth: AuthLevel;
}

/** Where a permission lives: one repository, or a whole namespace (organization). */
type Target =
  | { kind: 'repo'; namespace: string; repository: string }
  | { kind: 'namespace'; namespace: string };

/**
 * A stable string key for a target. Repository keys always contain a `/` between namespace
 * and repository; namespace names never contain one, so the two kinds cannot collide.
 *
 * @example targetKey({ kind: 'repo', namespace: 'core', repository: 'api/server' }) // 'core/api/server'
 */
const targetKey = (target: Target): string =>
  target.kind === 'repo' ? `${target.namespace}/${target.repository}` : target.namespace;

/** What SWR reports for a target (GET): the caller itself, and everyone else. */
interface TargetAccess {
  /** The caller's own user id (`self_auth`): never planned for. */
  selfUserId: string | undefined;
  users: UserAuth[];
}

/** Options every remote call takes: an absolute deadline (epoch ms) and an abort signal. */
interface CallOptions {
  deadline?: number;
  signal?: AbortSignal;
}

/**
 * The port through which the core reads and writes SWR permissions. The undici client
 * implements it; tests may hand in fakes.
 */
interface SwrPermissionsPort {
  getAccess(target: Target, options?: CallOptions): Promise<TargetAccess>;
  /** POST; a permission that already exists is changed to the asked level instead. */
  grant(target: Target, users: UserAuth[], options?: CallOptions): Promise<void>;
  /** PATCH. */
  change(target: Target, users: UserAuth[], options?: CallOptions): Promise<void>;
  /** DELETE; a user who holds no permission counts as revoked. */
  revoke(target: Target, userIds: string[], options?: CallOptions): Promise<void>;
  /** Every repository name (with `/`, not `$`) of a namespace, all pages. */
  listRepositories(namespace: string, options?: CallOptions): Promise<string[]>;
}

/** A user as IAM knows them. */
interface IamUser {
  id: string;
  name: string;
}

/** Resolves the half of a user's identity an event did not carry. */
interface UserDirectoryPort {
  /** `undefined` when IAM answers that no such user exists. Throws when IAM cannot be read. */
  findById(userId: string, options?: CallOptions): Promise<IamUser | undefined>;
  findByName(userName: string, options?: CallOptions): Promise<IamUser | undefined>;
}

export type {
  AuthLevel,
  CallOptions,
  IamUser,
  PermissionName,
  SwrPermissionsPort,
  Target,
  TargetAccess,
  UserAuth,
  UserDirectoryPort,
};
export { AuthLevels, permissionOfLevel, targetKey };

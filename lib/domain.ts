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

/** The user an event names: its IAM id, its IAM name, or both (at least one). */
interface EventUser {
  id?: string;
  name?: string;
}

interface EventFields<U> {
  /** The producer's id, used for de-duplication. */
  id: string;
  /** ISO 8601 with a zone. */
  occurredAt: string;
  /**
   * ISO 8601 with a zone; when the fact takes effect, if not at once (a leaver's last day, a
   * contractor's start). The store keeps a future one pending until it is due; the fact's instant
   * (for staleness) is `effectiveAt` when set, else `occurredAt`.
   */
  effectiveAt?: string;
  source?: string;
  user: U;
}

/** One fact from the people system, generic over how much of the user is known. */
type PeopleEventOf<U> =
  | (EventFields<U> & {
      type: 'membership.added';
      team: string;
      /** ISO 8601 with a zone; when the membership ends (kept on the team's fact, see `TeamFact`). */
      expiresAt?: string;
    })
  | (EventFields<U> & { type: 'membership.removed'; team: string })
  | (EventFields<U> & { type: 'user.offboarded' })
  /** Every team the user is in now (deduplicated; empty = no team). */
  | (EventFields<U> & { type: 'user.teams'; teams: string[] });

/** An event as parsed from a queue message. */
type PeopleEvent = PeopleEventOf<EventUser>;

/** An event whose user is known by both id and name. */
type ResolvedEvent = PeopleEventOf<IamUser>;

type PeopleEventType = PeopleEvent['type'];

/** What one team of the policy gives on one target. */
interface PolicyGrant {
  target: Target;
  permission: PermissionName;
  level: AuthLevel;
  /** Reserved for a later issue: users that no team gives this target to are removed from it. */
  exclusive: boolean;
}

/** Where an identity provider's user attribute comes from, to become an IAM user name. */
type IamNameSource = 'userName' | 'email' | 'emailLocalPart' | 'externalId' | 'attribute';

/**
 * How an IdP user becomes an IAM user (policy `identity`): the IAM name is taken from one user
 * attribute (optionally lowercased) and resolved by exact name in IAM.
 */
interface IdentityMapping {
  source: IamNameSource;
  /** For `source: 'attribute'`: the SCIM attribute path (`nickName`, `urn:…:enterprise:2.0:User:employeeNumber`). */
  attribute?: string;
  lowercase: boolean;
}

/** The access policy: the only thing that can grant. */
interface Policy {
  version: 1;
  /** Where it was loaded from (for messages). */
  sourcePath: string;
  /** User ids never granted, changed or revoked. */
  protectedUsers: string[];
  /** Namespaces the service owns (reserved for a later issue: offboarding sweep). */
  managedNamespaces: string[];
  /** Team name → grants. Read with `Object.hasOwn` (or the policy helpers): team names are data. */
  teams: Record<string, PolicyGrant[]>;
  /**
   * Team name → the identity-provider groups whose members are in the team (policy
   * `teams.<team>.idpGroups`; a team without the list is matched by its own name). Absent in
   * policies built in code: every team then matches its own name.
   */
  idpGroups?: Record<string, string[]>;
  /** How IdP users map to IAM users (absent: `userName`, not lowercased). */
  identity?: IdentityMapping;
}

/** The last fact the service knows about one user in one team. */
interface TeamFact {
  member: boolean;
  /** Instant of the fact: the event's `effectiveAt`, else its `occurredAt` (ISO 8601 with a zone). */
  at: string;
  eventId: string;
  /**
   * When a membership from a `membership.added` with `expiresAt` ends: from that instant on the
   * team is no longer current (see `currentTeams(record, now)`), and settling the record turns
   * the fact into `{ member: false, at: expiresAt }`.
   */
  expiresAt?: string;
}

/** What the membership store keeps per user. */
interface UserRecord {
  userId: string;
  userName: string;
  /** Every team the user was ever seen in; left teams stay with `member: false` (staleness markers). */
  teams: Record<string, TeamFact>;
  /** Tombstone: when the user left the company. */
  offboardedAt?: string;
  /**
   * Instant of the newest `user.teams` snapshot applied: a team absent from `teams` counts as
   * left at that instant, so an older join of a team the snapshot did not list stays stale.
   */
  snapshotAt?: string;
  /**
   * Events whose `effectiveAt` was still in the future when they arrived, in order of their
   * instant; applied when due (`MembershipStorePort.applyDue`, or any later `apply`). Absent when
   * empty; deduplicated by event id; at most `maxPendingEvents` (lib/core/membership.ts).
   */
  pending?: ResolvedEvent[];
  /** Optimistic-locking version: 0 = never stored. */
  version: number;
  /** When the store last wrote the record. */
  updatedAt?: string;
}

const ApplyStatuses = {
  applied: 'applied',
  duplicate: 'duplicate',
  stale: 'stale',
  supersededByOffboarding: 'superseded-by-offboarding',
  /** Effective in the future: kept in `UserRecord.pending`, applied when due. */
  deferred: 'deferred',
} as const;

type ApplyStatus = (typeof ApplyStatuses)[keyof typeof ApplyStatuses];

/** What applying one event to a user record did. */
interface ApplyOutcome {
  eventId: string;
  status: ApplyStatus;
  /** Teams whose fact the event changed (empty unless `applied`). */
  changedTeams: string[];
  /** Why an event was not applied, for logs. */
  reason?: string;
  /** Ids of pending events an applied offboarding cancelled (effective at or before it). */
  cancelled?: string[];
}

/** The result of `MembershipStorePort.apply`. */
interface ApplyResult {
  /** The stored record before the events, `undefined` for a user never stored. */
  before: UserRecord | undefined;
  /** The record after the events (what is stored now when `written`). */
  after: UserRecord;
  outcomes: ApplyOutcome[];
  /**
   * What settling the record did at `now`, beside the events: due pending events applied (their
   * outcomes) and expired memberships ended (eventId = the join's, reason says so). Set by the
   * store adapters; absent or empty when nothing was due.
   */
  settled?: ApplyOutcome[];
  /** False when nothing changed (no event applied or deferred, nothing settled): nothing was written. */
  written: boolean;
}

/** The membership store (DynamoDB in production, memory in tests). */
interface MembershipStorePort {
  /** Strongly consistent read; throws `StoreError` when the store cannot be read. */
  get(userId: string): Promise<UserRecord | undefined>;
  /**
   * Applies the events of one user in order, atomically (optimistic locking, retried on conflict).
   * At `now` (default: the store's clock): the record is settled first (due pending events applied,
   * expired memberships ended), an event effective after `now` is kept pending (`deferred`), and
   * the record is settled again (an event may arrive already expired).
   */
  apply(user: IamUser, events: readonly ResolvedEvent[], now?: Date): Promise<ApplyResult>;
  /**
   * Settles one stored user at `now`: applies the pending events that are due and ends the
   * memberships that expired; written (version + 1) only if something changed. `outcomes` are
   * what settling did (also in `settled`). `undefined` for a user never stored.
   */
  applyDue(userId: string, now: Date): Promise<ApplyResult | undefined>;
  /** Every stored user. */
  list(): AsyncIterable<UserRecord>;
}

/** The three SWR writes, in the order the planner emits them for one target. */
const PlanActions = { grant: 'grant', change: 'change', revoke: 'revoke' } as const;

type PlanAction = (typeof PlanActions)[keyof typeof PlanActions];

/** One user's move on one target, as planned (and, once done, as audited). */
interface PlannedChange {
  target: Target;
  action: PlanAction;
  userId: string;
  userName: string;
  /** The level SWR reported; `undefined` = no permission. */
  before: AuthLevel | undefined;
  /** The level the policy asks for; `undefined` = none (revoke). */
  after: AuthLevel | undefined;
  /** The events (and messages) of the batch that led to this move. */
  eventIds: string[];
  messageIds: string[];
}

interface PlannedCallFields {
  target: Target;
  /** Union of the messages of every user in the call (sorted, unique). */
  messageIds: string[];
  /** One entry per user in the call, sorted by user id. */
  changes: PlannedChange[];
}

/** One SWR call for one target and action, with every user of the batch that needs it. */
type PlannedCall =
  | (PlannedCallFields & { action: 'grant' | 'change'; users: UserAuth[] })
  | (PlannedCallFields & { action: 'revoke'; userIds: string[] });

/** What the planner decided for one batch. */
interface Plan {
  /** The `now` the plan was made with (ISO 8601). */
  createdAt: string;
  /** Every message of the batch (sorted, unique), including those that need no call. */
  messageIds: string[];
  /** Sorted by target kind and key, then grant, change, revoke. */
  calls: PlannedCall[];
  /** Touched targets with no actual access (SWR could not be read): nothing planned there. */
  skipped: Target[];
  /**
   * Messages that needed a skipped target: they must not be acknowledged (never act on a
   * failed read), whatever their other calls do. Sorted by message id.
   */
  blocked: Array<{ messageId: string; targets: Target[] }>;
}

export type {
  ApplyOutcome,
  ApplyResult,
  ApplyStatus,
  AuthLevel,
  CallOptions,
  EventUser,
  IamNameSource,
  IamUser,
  IdentityMapping,
  MembershipStorePort,
  PeopleEvent,
  PeopleEventOf,
  PeopleEventType,
  PermissionName,
  Plan,
  PlanAction,
  PlannedCall,
  PlannedChange,
  Policy,
  PolicyGrant,
  ResolvedEvent,
  SwrPermissionsPort,
  Target,
  TargetAccess,
  TeamFact,
  UserAuth,
  UserDirectoryPort,
  UserRecord,
};
export { ApplyStatuses, AuthLevels, PlanActions, permissionOfLevel, targetKey };

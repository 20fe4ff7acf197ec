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
  /** Forgets what is cached about a user, so that the next look-up asks IAM. */
  forget?(userId: string): void;
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
  /** Reconcile revokes grants of users the service does not know on this target. */
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
  /** Namespaces the service owns: an offboarding sweeps every repository in them. */
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
  /**
   * The teams the user is or was in; left teams stay with `member: false` (staleness markers)
   * until a watermark decides them: markers at or before the tombstone are dropped on every
   * write, those at or before the snapshot or `floorAt` when the record must shrink to fit one
   * item (lib/store/bounds.ts).
   */
  teams: Record<string, TeamFact>;
  /** Tombstone: when the user left the company. */
  offboardedAt?: string;
  /**
   * Instant of the newest `user.teams` snapshot applied: a team absent from `teams` counts as
   * left at that instant, so an older join of a team the snapshot did not list stays stale.
   */
  snapshotAt?: string;
  /**
   * Set only when the record had to shed left-team markers to fit in one DynamoDB item: a team
   * the user is not a member of counts as left at this instant at the latest (its marker, if any,
   * is older), so a join or removal older than it counts as stale for such a team. A documented,
   * conservative loss: it can only refuse a late fact, never grant one.
   */
  floorAt?: string;
  /**
   * Events whose `effectiveAt` was still in the future when they arrived, in order of their
   * instant; applied when due (`MembershipStorePort.applyDue`, or any later `apply`). Absent when
   * empty; deduplicated by event id; at most `maxPendingEvents` and `maxPendingBytes`
   * (lib/core/membership.ts).
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
  /** Set when settling ended a membership because its `expiresAt` passed. */
  expired?: { team: string; at: string };
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
  /** Set when the record had to shed something to fit in one item (see `RecordFit`). */
  fit?: RecordFit;
}

/**
 * What a write dropped to keep the user's record within one DynamoDB item. `compactedTeams` lost
 * nothing (left-team markers the watermarks already decide); the other lists are losses, each
 * conservative: a late fact may be refused, nothing is granted that would not have been.
 */
interface RecordFit {
  /** Serialised size of the item as written (DynamoDB's count, bytes). */
  bytes: number;
  /** The size limit the record was fitted to. */
  budget: number;
  /** Left-team markers dropped with no change of meaning. */
  compactedTeams: string[];
  /** Oldest left-team markers dropped to fit; `floorAt` rose to cover them. */
  prunedTeams: string[];
  floorAt?: string;
  /** Only to keep an offboarding recordable: pending events dropped (ids). */
  droppedPending: string[];
  /** Only to keep an offboarding recordable: memberships newer than the tombstone dropped. */
  droppedTeams: string[];
}

/**
 * The membership store (DynamoDB in production, memory in tests). Every method takes an optional
 * `CallOptions`: past `deadline` (or when `signal` aborts) it rejects with a retryable
 * `StoreError` whose code is `DEADLINE_EXCEEDED`, naming the operation.
 */
interface MembershipStorePort {
  /** Strongly consistent read; throws `StoreError` when the store cannot be read. */
  get(userId: string, options?: CallOptions): Promise<UserRecord | undefined>;
  /**
   * Applies the events of one user in order, atomically (optimistic locking, retried on conflict).
   * At `now` (default: the store's clock): the record is settled first (due pending events applied,
   * expired memberships ended), an event effective after `now` is kept pending (`deferred`), and
   * the record is settled again (an event may arrive already expired).
   * A record that would not fit in one item sheds what the watermarks make redundant, then the
   * oldest left-team markers (`floorAt`); an offboarding is always recorded (`ApplyResult.fit`
   * says what it cost). Otherwise a record that still does not fit is a permanent `StoreError`
   * `STORE_ITEM_TOO_LARGE`; a future-effective event over the pending bounds a permanent
   * `PendingLimitError`.
   */
  apply(
    user: IamUser,
    events: readonly ResolvedEvent[],
    now?: Date,
    options?: CallOptions,
  ): Promise<ApplyResult>;
  /**
   * Settles one stored user at `now`: applies the pending events that are due and ends the
   * memberships that expired; written (version + 1) only if something changed. `outcomes` are
   * what settling did (also in `settled`). `undefined` for a user never stored.
   */
  applyDue(userId: string, now: Date, options?: CallOptions): Promise<ApplyResult | undefined>;
  /** Every stored user (the deadline bounds every page read). */
  list(options?: CallOptions): AsyncIterable<UserRecord>;
}

/**
 * A named lease that one holder at a time may hold (DynamoDB in production, memory in tests and
 * the bench): until it releases it, or until `expiresAt` passes, so that a holder that crashed
 * frees it on its own. Times are epoch ms on the caller's clock.
 */
interface LeasePort {
  /**
   * One attempt, no waiting: true when `owner` holds `name` until `expiresAt` (the lease was free,
   * had expired, or is already this owner's), false while another owner's lease runs. Throws a
   * retryable `StoreError` when the store cannot be reached.
   */
  tryAcquire(name: string, owner: string, expiresAt: number, options?: CallOptions): Promise<boolean>;
  /** Frees `name` if `owner` still holds it; false (and nothing changed) when it is another's. */
  release(name: string, owner: string, options?: CallOptions): Promise<boolean>;
  /**
   * Adds users recorded by a batch that waits for the lease, so that the holder converges them
   * with its own (a hint: every batch still converges its own users). Bounded: once the list
   * holds `maxAnnouncedUsers`, nothing more is added.
   */
  announce(name: string, userIds: readonly string[], options?: CallOptions): Promise<void>;
  /** The users announced and not forgotten yet (a strongly consistent read). */
  announced(name: string, options?: CallOptions): Promise<string[]>;
  /** Removes users a holder converged from the announced ones. */
  forget(name: string, userIds: readonly string[], options?: CallOptions): Promise<void>;
}

/** The three SWR writes, in the order the planner emits them for one target. */
const PlanActions = { grant: 'grant', change: 'change', revoke: 'revoke' } as const;

type PlanAction = (typeof PlanActions)[keyof typeof PlanActions];

/**
 * Why a change is planned: the answer the audit trail gives to "why did this user lose (or get)
 * access here?". Revokes of `offboarding` and `expiry` were decided by a person (HR set the leave
 * date or the end of the membership); the mass-revoke guard does not count them.
 */
const ChangeReasons = {
  /** The batch's events asked for it (their ids and types are in `detail` and `eventIds`). */
  events: 'events',
  /** The user left the company. */
  offboarding: 'offboarding',
  /** A time-bound membership ended. */
  expiry: 'expiry',
  /** A grant that none of the user's teams gives on this target (e.g. a policy entry removed). */
  notInPolicy: 'not-in-policy',
  /** A grant held by a user the service does not know, on a target the policy marks exclusive. */
  exclusive: 'hand-made-on-exclusive',
  /** SWR differs from what the user's teams give, with no event in this run (repair). */
  drift: 'drift',
} as const;

type ChangeReasonKind = (typeof ChangeReasons)[keyof typeof ChangeReasons];

interface ChangeReason {
  kind: ChangeReasonKind;
  /** One line a person reads: `event hr-1 (membership.removed)`, `team contractors expired at …`. */
  detail: string;
}

/** One user's move on one target, as planned (and, once done, as audited). */
interface PlannedChange {
  /** Why the change is planned. */
  reason: ChangeReason;
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
  /**
   * Users left out of a call because SWR would refuse their entry (an id or name that breaks the
   * SWR rules): their messages fail alone, the other users of the call go ahead.
   */
  rejected: Array<{ userId: string; target: Target; messageIds: string[]; rule: string }>;
}

export type {
  ApplyOutcome,
  ApplyResult,
  ApplyStatus,
  AuthLevel,
  CallOptions,
  ChangeReason,
  ChangeReasonKind,
  EventUser,
  IamNameSource,
  IamUser,
  IdentityMapping,
  LeasePort,
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
  RecordFit,
  ResolvedEvent,
  SwrPermissionsPort,
  Target,
  TargetAccess,
  TeamFact,
  UserAuth,
  UserDirectoryPort,
  UserRecord,
};
export { ApplyStatuses, AuthLevels, ChangeReasons, PlanActions, permissionOfLevel, targetKey };

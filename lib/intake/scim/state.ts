/**
 * What the SCIM service provider keeps (users, groups, memberships, SCIM id ↔ IAM user) and the
 * port through which it keeps it. Every write is one item, conditional: DynamoDB transactions are
 * not needed, and dynalite (the local stack) does not have them.
 *
 * Effects that must reach the queues ride in an outbox on the item whose change caused them (the
 * user for offboardings, the membership for joins and leaves), written in the same conditional
 * write as the change, sent, then cleared. A send that fails leaves the outbox: the next request
 * touching the item (the identity provider's retry) sends it again with the same ids, so a change
 * is never recorded without its events, and never applied twice.
 */
import type { IamUser, PeopleEvent } from '../../domain.ts';

/** An event waiting in an outbox, with the deduplication id derived from the request. */
interface QueuedEvent {
  event: PeopleEvent;
  dedupId: string;
}

interface ScimUserRecord {
  /** Our SCIM id. */
  id: string;
  userName: string;
  active: boolean;
  /** The SCIM attributes as the identity provider sent them (never `id`, `meta`, `password`, `groups`). */
  attributes: Record<string, unknown>;
  /** The IAM user the events of this user name; absent while unmapped. */
  iam?: IamUser;
  /** Why no IAM user could be found (for logs and the operator). */
  unmappedReason?: string;
  created: string;
  lastModified: string;
  /** Optimistic-locking version: every write is conditional on the version read. */
  version: number;
  outbox?: QueuedEvent[];
  /** DELETE in progress: gone for SCIM, kept until its effects are sent and its memberships cleared. */
  deleted?: boolean;
}

/** A change of the teams a group gives (rename, delete) still to be applied to its members. */
interface PendingGroupChange {
  at: string;
  fromTeams: string[];
  toTeams: string[];
  deleting: boolean;
}

interface ScimGroupRecord {
  id: string;
  displayName: string;
  externalId?: string;
  created: string;
  lastModified: string;
  version: number;
  pending?: PendingGroupChange;
}

/**
 * One user's membership of one group. A removal is kept (`member: false`) for a while, so that a
 * late, older request cannot undo a newer one: a transition applies only over an older `at`.
 */
interface MemberEdge {
  groupId: string;
  userId: string;
  member: boolean;
  at: string;
  outbox?: QueuedEvent[];
}

type SaveResult = 'ok' | 'conflict' | 'duplicate';

interface ScimStore {
  getUser(id: string): Promise<ScimUserRecord | undefined>;
  getUsers(ids: readonly string[]): Promise<Map<string, ScimUserRecord>>;
  /** By userName, compared case-insensitively (RFC 7643: userName is not case-exact). */
  userIdByName(userName: string): Promise<string | undefined>;
  /** Every user (deleted ones included), by id. */
  listUsers(): Promise<ScimUserRecord[]>;
  /** `duplicate`: another live user has that userName. */
  createUser(record: ScimUserRecord): Promise<'ok' | 'duplicate'>;
  /** Writes `record` if the stored version is still `expectedVersion`; moves the userName index. */
  saveUser(record: ScimUserRecord, expectedVersion: number, previousUserName: string): Promise<SaveResult>;
  /** Removes the user and its userName index (after its effects were sent). */
  removeUser(record: ScimUserRecord): Promise<void>;
  /** Clears the outbox if the version is still `version` (the version moves on). */
  clearUserOutbox(id: string, version: number): Promise<void>;

  getGroup(id: string): Promise<ScimGroupRecord | undefined>;
  getGroups(ids: readonly string[]): Promise<Map<string, ScimGroupRecord>>;
  /** By displayName, compared case-insensitively. */
  groupIdByName(displayName: string): Promise<string | undefined>;
  listGroups(): Promise<ScimGroupRecord[]>;
  createGroup(record: ScimGroupRecord): Promise<'ok' | 'duplicate'>;
  saveGroup(record: ScimGroupRecord, expectedVersion: number, previousName: string): Promise<SaveResult>;
  removeGroup(record: ScimGroupRecord): Promise<void>;

  getEdges(groupId: string, userIds: readonly string[]): Promise<Map<string, MemberEdge>>;
  /** Every edge of a group, removals and pending outboxes included. */
  listEdges(groupId: string): Promise<MemberEdge[]>;
  /**
   * Sets the edge to `edge.member` at `edge.at` with its outbox, if the edge does not exist or
   * holds the other state at an older instant. False when it did not apply (already so, or newer).
   */
  transitionEdge(edge: MemberEdge): Promise<boolean>;
  /** Clears the outbox of the edge if it is still the state written at `at`. */
  clearEdgeOutbox(groupId: string, userId: string, at: string): Promise<void>;
  removeEdge(groupId: string, userId: string): Promise<void>;
  /** The groups a user is a member of (the reverse index, kept when an edge's outbox is sent). */
  userGroupIds(userId: string): Promise<string[]>;
  setUserGroup(userId: string, groupId: string, member: boolean, at: string): Promise<void>;
  removeUserGroup(userId: string, groupId: string): Promise<void>;
}

/** Index keys: names compare without case and surrounding spaces. */
const nameKey = (name: string): string => name.trim().toLowerCase();

export type {
  MemberEdge,
  PendingGroupChange,
  QueuedEvent,
  SaveResult,
  ScimGroupRecord,
  ScimStore,
  ScimUserRecord,
};
export { nameKey };

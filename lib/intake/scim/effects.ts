/**
 * What a SCIM change does to access: the people events it causes, written to an outbox with the
 * change and then sent. Only the policy grants; a group gives the teams that list it in
 * `idpGroups` (or are named like it), and an event is sent only for a user who is active and
 * mapped to an IAM user:
 * - a member joins a group → `membership.added` for each of the group's teams;
 * - a member leaves → `membership.removed` for each of those teams the user is not still in
 *   through another group;
 * - a group is renamed into other teams, or deleted → the difference for each member;
 * - a user is disabled or deleted → `user.offboarded`; enabled again → a join for each team of
 *   the user's groups (newer than the offboarding: a rehire);
 * - a user's IAM identity changes (a renamed `userName`, say) → the old one leaves the teams, the
 *   new one joins them.
 *
 * Event ids are derived from the change (resource, instant, user, team), so sending an outbox
 * again (the identity provider's retry) produces the same messages: SQS drops the copy, and the
 * membership store sees the same fact twice.
 */
import { createHash } from 'node:crypto';
import { identityOf, idpGroupsOfTeam, teamsOfIdpGroup } from '../../core/policy.ts';
import type { IamUser, PeopleEvent, Policy, UserDirectoryPort } from '../../domain.ts';
import { type Log, MetricNames, type MetricsSink } from '../../observability.ts';
import { mapLimit } from '../../pool.ts';
import { EnqueueError, type EventProducer, validateEvents } from '../../producer.ts';
import { redactSecrets } from '../../redact.ts';
import { resolveIamUser } from '../identity.ts';
import { ScimError } from './protocol.ts';
import type { MemberEdge, QueuedEvent, ScimGroupRecord, ScimStore, ScimUserRecord } from './state.ts';

interface ScimDeps {
  store: ScimStore;
  producer: EventProducer;
  directory: UserDirectoryPort;
  policy: Policy;
  log: Log;
  metrics: MetricsSink;
  /** Strictly increasing instants: two changes never share one. */
  clock: () => Date;
  newId: () => string;
  /** Store and IAM calls in flight for one request (default 8). */
  concurrency?: number;
}

const eventSource = 'scim';

/** A stable id from the parts that make a change unique. */
const derivedId = (parts: readonly string[]): string =>
  `scim-${createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 40)}`;

const queued = (event: PeopleEvent): QueuedEvent => ({ event, dedupId: event.id });

const membershipEvent = (
  type: 'membership.added' | 'membership.removed',
  user: IamUser,
  team: string,
  at: string,
  cause: readonly string[],
): QueuedEvent =>
  queued({
    id: derivedId([...cause, type, user.id, team, at]),
    type,
    occurredAt: at,
    source: eventSource,
    user: { id: user.id, name: user.name },
    team,
  });

const offboardingEvent = (user: IamUser, at: string, cause: readonly string[]): QueuedEvent =>
  queued({
    id: derivedId([...cause, 'user.offboarded', user.id, at]),
    type: 'user.offboarded',
    occurredAt: at,
    source: eventSource,
    user: { id: user.id, name: user.name },
  });

/** Team sets, sorted, without repeats. */
const union = (lists: ReadonlyArray<readonly string[]>): string[] => [...new Set(lists.flat())].sort();
const minus = (a: readonly string[], b: readonly string[]): string[] => a.filter((item) => !b.includes(item));

/**
 * @example const effects = createScimEffects(deps); await effects.changeMembers(group, [{ userId, member: true }], at);
 */
const createScimEffects = (deps: ScimDeps) => {
  const { store, policy, log, metrics } = deps;
  const concurrency = deps.concurrency ?? 8;

  const reportUnmapped = (scimUserId: string, reason: string): void => {
    metrics.count(MetricNames.intakeUnmappedUsers);
    log.warn('intake: user not mapped to an IAM user; nothing changes for it', {
      source: eventSource,
      scimUserId,
      reason: redactSecrets(reason),
    });
  };

  const reportUnknownGroup = (group: ScimGroupRecord): void => {
    metrics.count(MetricNames.intakeUnknownGroups);
    log.warn('intake: group gives no team of the policy; memberships recorded, nothing granted', {
      source: eventSource,
      scimGroupId: group.id,
      group: group.displayName,
    });
  };

  /**
   * Sends events. One the handlers would refuse (it cannot happen with names from the policy and
   * IAM; if it does, retrying cannot help) is logged and dropped; a failed send is a 503.
   */
  const send = async (events: readonly QueuedEvent[]): Promise<void> => {
    if (events.length === 0) return;
    const sendable: QueuedEvent[] = [];
    for (const item of events) {
      const checked = validateEvents([item.event]);
      if (checked.ok) sendable.push(item);
      else
        log.error('intake: an event of ours is not valid; dropped', {
          eventId: item.event.id,
          problems: checked.problems.map((problem) => redactSecrets(problem.message)),
        });
    }
    try {
      await deps.producer.send(sendable);
      metrics.count(MetricNames.intakeEventsSent, sendable.length);
    } catch (error) {
      metrics.count(MetricNames.intakeEnqueueFailures);
      const retryable = !(error instanceof EnqueueError) || error.retryable;
      log.error('intake: events could not be queued; the change is kept and sent again on retry', {
        source: eventSource,
        events: sendable.length,
        reason: redactSecrets(error instanceof Error ? error.message : String(error)),
      });
      throw new ScimError(
        retryable ? 503 : 500,
        'the change is recorded but could not be queued yet; retry',
        undefined,
        {
          cause: error,
        },
      );
    }
  };

  /** The teams a group gives now (while a rename or delete is settling: what it will give). */
  const teamsOfGroup = (group: ScimGroupRecord): string[] =>
    group.pending === undefined ? teamsOfIdpGroup(policy, group.displayName) : group.pending.toTeams;

  /** Whether the user is in `team` through a group other than `exceptGroupId`. */
  const stillInTeam = async (userId: string, team: string, exceptGroupId: string): Promise<boolean> => {
    for (const name of idpGroupsOfTeam(policy, team)) {
      const groupId = await store.groupIdByName(name);
      if (groupId === undefined || groupId === exceptGroupId) continue;
      if ((await store.getEdges(groupId, [userId])).get(userId)?.member === true) return true;
    }
    return false;
  };

  /** Every team the user's groups give. */
  const teamsOfUser = async (userId: string): Promise<string[]> => {
    const groups = await store.getGroups(await store.userGroupIds(userId));
    return union([...groups.values()].map(teamsOfGroup));
  };

  /**
   * The IAM user a SCIM user's events name: the stored one, else resolved now and stored with
   * the user (so that later changes know whom earlier events named). `undefined`: unmapped.
   */
  const iamOf = async (user: ScimUserRecord): Promise<IamUser | undefined> => {
    let current = user;
    for (let attempt = 0; attempt < 5; attempt += 1) {
      if (current.iam !== undefined) return current.iam;
      const resolution = await resolveIamUser(identityOf(policy), current.attributes, deps.directory);
      if (resolution.kind === 'unmapped') {
        reportUnmapped(current.id, resolution.reason);
        return undefined;
      }
      const saved = await store.saveUser(
        { ...current, iam: resolution.user, unmappedReason: undefined, version: current.version + 1 },
        current.version,
        current.userName,
      );
      if (saved === 'ok') return resolution.user;
      const reread = await store.getUser(current.id);
      if (reread === undefined || reread.deleted === true) return undefined;
      current = reread;
    }
    throw new ScimError(503, 'the user changed under five attempts in a row; retry');
  };

  /** Sends a user's outbox and clears it (if the user did not move on meanwhile). */
  const flushUser = async (user: ScimUserRecord): Promise<void> => {
    if (user.outbox === undefined || user.outbox.length === 0) return;
    await send(user.outbox);
    await store.clearUserOutbox(user.id, user.version);
  };

  /** Sends the outboxes of edges just written, then indexes them for their users and clears them. */
  const flushEdges = async (edges: readonly MemberEdge[]): Promise<void> => {
    await send(edges.flatMap((edge) => edge.outbox ?? []));
    await mapLimit(edges, concurrency, async (edge) => {
      await store.setUserGroup(edge.userId, edge.groupId, edge.member, edge.at);
      if (edge.outbox !== undefined) await store.clearEdgeOutbox(edge.groupId, edge.userId, edge.at);
    });
  };

  /** The events of one membership change of an active, mapped user. */
  const eventsOfEdge = async (
    group: ScimGroupRecord,
    teams: readonly string[],
    user: ScimUserRecord | undefined,
    member: boolean,
    at: string,
  ): Promise<QueuedEvent[]> => {
    if (teams.length === 0) return [];
    if (user === undefined || user.deleted === true) {
      log.warn('intake: group member is not a provisioned user; recorded, nothing granted', {
        source: eventSource,
        scimGroupId: group.id,
      });
      return [];
    }
    // A disabled user is offboarded: a join now would count as a rehire.
    if (!user.active) return [];
    const iam = await iamOf(user);
    if (iam === undefined) return [];
    const cause = ['member', group.id, user.id];
    if (member) return teams.map((team) => membershipEvent('membership.added', iam, team, at, cause));
    const leaving: QueuedEvent[] = [];
    for (const team of teams)
      if (!(await stillInTeam(user.id, team, group.id)))
        leaving.push(membershipEvent('membership.removed', iam, team, at, cause));
    return leaving;
  };

  /**
   * Applies membership changes of one group: each edge moves at most once (conditional on its
   * state and instant), with its events in its outbox; then every outbox is sent.
   */
  const changeMembers = async (
    group: ScimGroupRecord,
    changes: ReadonlyArray<{ userId: string; member: boolean }>,
    at: string,
    /** Every edge of these users as the caller just read them (absent: no edge); saves a read. */
    known?: ReadonlyMap<string, MemberEdge>,
  ): Promise<void> => {
    if (changes.length === 0) return;
    const teams = teamsOfGroup(group);
    if (teams.length === 0) reportUnknownGroup(group);
    const ids = changes.map((change) => change.userId);
    const [users, edges] = await Promise.all([store.getUsers(ids), known ?? store.getEdges(group.id, ids)]);
    const written = await mapLimit(
      changes,
      concurrency,
      async ({ userId, member }): Promise<MemberEdge[]> => {
        const edge = edges.get(userId);
        if (edge !== undefined && (edge.member === member || Date.parse(edge.at) >= Date.parse(at)))
          // Already so (a retry): send what it may still hold.
          return edge.outbox === undefined || edge.outbox.length === 0 ? [] : [edge];
        const outbox = await eventsOfEdge(group, teams, users.get(userId), member, at);
        const next: MemberEdge = {
          groupId: group.id,
          userId,
          member,
          at,
          ...(outbox.length === 0 ? {} : { outbox }),
        };
        return (await store.transitionEdge(next)) ? [next] : [];
      },
    );
    await flushEdges(written.flat());
  };

  /**
   * Finishes a rename into other teams, or a delete: the difference for every member, sent; then
   * the mark is cleared (or the group removed). Safe to run again: the events are the same.
   * Returns the group as it stands afterwards (`undefined` once deleted).
   */
  const settleGroup = async (group: ScimGroupRecord): Promise<ScimGroupRecord | undefined> => {
    const change = group.pending;
    if (change === undefined) return group;
    const edges = await store.listEdges(group.id);
    const members = edges.filter((edge) => edge.member);
    const users = await store.getUsers(members.map((edge) => edge.userId));
    const leaving = minus(change.fromTeams, change.toTeams);
    const joining = minus(change.toTeams, change.fromTeams);
    const cause = ['group', group.id, change.deleting ? 'delete' : 'rename'];
    const perMember = await mapLimit(members, concurrency, async (edge): Promise<QueuedEvent[]> => {
      const user = users.get(edge.userId);
      if (user === undefined || user.deleted === true || !user.active || user.iam === undefined) return [];
      const iam = user.iam;
      const events = joining.map((team) => membershipEvent('membership.added', iam, team, change.at, cause));
      for (const team of leaving)
        if (!(await stillInTeam(user.id, team, group.id)))
          events.push(membershipEvent('membership.removed', iam, team, change.at, cause));
      return events;
    });
    // Outboxes of its memberships first: a delete removes the memberships that hold them.
    await flushEdges(edges.filter((edge) => edge.outbox !== undefined && edge.outbox.length > 0));
    await send(perMember.flat());
    if (change.deleting) {
      await mapLimit(edges, concurrency, async (edge) => {
        await store.removeEdge(group.id, edge.userId);
        await store.removeUserGroup(edge.userId, group.id);
      });
      await store.removeGroup(group);
      return undefined;
    }
    const settled: ScimGroupRecord = { ...group, version: group.version + 1 };
    delete settled.pending;
    if ((await store.saveGroup(settled, group.version, group.displayName)) === 'ok') return settled;
    // Someone else wrote the group meanwhile (and settled it, or will): read what stands.
    return store.getGroup(group.id);
  };

  /**
   * The events of a user's change from `before` to `after` (active flag and IAM identity).
   *
   * @example await effects.userChangeEvents(stored, { ...stored, active: false }, at) // [user.offboarded]
   */
  const userChangeEvents = async (
    before: ScimUserRecord,
    after: ScimUserRecord,
    at: string,
  ): Promise<QueuedEvent[]> => {
    const cause = ['user', before.id];
    const oldIam = before.iam;
    const newIam = after.iam;
    const sameIdentity = oldIam?.id === newIam?.id;
    if (before.active && !after.active) {
      // Offboard every identity the person maps to: no grant survives, whoever holds it.
      const identities = [oldIam, newIam].filter((iam): iam is IamUser => iam !== undefined);
      return [...new Map(identities.map((iam) => [iam.id, iam])).values()].map((iam) =>
        offboardingEvent(iam, at, cause),
      );
    }
    if (!after.active) return [];
    if (!before.active) {
      if (newIam === undefined) return [];
      const teams = await teamsOfUser(after.id);
      return teams.map((team) => membershipEvent('membership.added', newIam, team, at, cause));
    }
    if (sameIdentity) return [];
    const teams = await teamsOfUser(after.id);
    return [
      ...(oldIam === undefined
        ? []
        : teams.map((team) => membershipEvent('membership.removed', oldIam, team, at, cause))),
      ...(newIam === undefined
        ? []
        : teams.map((team) => membershipEvent('membership.added', newIam, team, at, cause))),
    ];
  };

  return {
    changeMembers,
    flushEdges,
    flushUser,
    iamOf,
    offboardingEvent: (user: IamUser, at: string, cause: readonly string[]) =>
      offboardingEvent(user, at, cause),
    reportUnmapped,
    send,
    settleGroup,
    teamsOfGroup,
    userChangeEvents,
  };
};

type ScimEffects = ReturnType<typeof createScimEffects>;

export type { ScimDeps, ScimEffects };
export { createScimEffects, derivedId };

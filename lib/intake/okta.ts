/**
 * Okta Event Hooks: a delivery (`data.events[]`, System Log events) becomes our events.
 * - `group.user_membership.add` / `.remove` → `membership.added` / `.removed` for every team the
 *   group gives (policy `idpGroups`, or the team named like the group);
 * - `user.lifecycle.deactivate` → `user.offboarded`; `user.lifecycle.suspend` → the same, or
 *   nothing (`OKTA_SUSPEND_ACTION`);
 * - anything else, a failed outcome, or an event without the targets it needs → skipped, logged.
 *
 * The event's `uuid` is its id (Okta delivers at least once: a copy is the same message, which
 * SQS and the membership store drop) and `published` its `occurredAt` (events arrive out of order;
 * the store orders them). The user is mapped by the policy's `identity` from what the event
 * carries: the login (`alternateId`, also taken as the e-mail) and the Okta user id (`externalId`).
 * If IAM cannot be read within Okta's time, the event names the user by the mapped IAM name only,
 * and the queue handler resolves it (and dead-letters it if IAM does not know it).
 */
import { createHash } from 'node:crypto';
import { identityOf, teamsOfIdpGroup } from '../core/policy.ts';
import type { EventUser, PeopleEvent, Policy, UserDirectoryPort } from '../domain.ts';
import { isRetryable } from '../errors.ts';
import { type Log, MetricNames, type MetricsSink } from '../observability.ts';
import { mapLimit } from '../pool.ts';
import { type OutgoingEvent, validateEvents } from '../producer.ts';
import { redactSecrets } from '../redact.ts';
import * as z from '../zod.ts';
import { type IdpUserAttributes, mappedIamName, resolveIamUser } from './identity.ts';

type SuspendAction = 'offboard' | 'ignore';

const eventSource = 'okta-hook';

const targetSchema = z.looseObject({
  id: z.optional(z.string()),
  type: z.optional(z.string()),
  alternateId: z.nullish(z.string()),
  displayName: z.nullish(z.string()),
});

const logEventSchema = z.looseObject({
  uuid: z.string().check(z.minLength(1), z.maxLength(100)),
  published: z.string(),
  eventType: z.string(),
  outcome: z.nullish(z.looseObject({ result: z.nullish(z.string()) })),
  target: z.nullish(z.array(targetSchema)),
});

const deliverySchema = z.looseObject({
  data: z.looseObject({ events: z.array(z.unknown()).check(z.maxLength(1000)) }),
});

type LogEvent = z.infer<typeof logEventSchema>;

/** What one System Log event became. */
type HookOutcome =
  | { uuid: string; kind: 'events'; events: OutgoingEvent[] }
  | { uuid: string | undefined; kind: 'skipped'; reason: string };

/** What the hook's user is to the identity mapping: the login, the Okta id, the display name. */
const attributesOfTarget = (user: z.infer<typeof targetSchema>): IdpUserAttributes => ({
  ...(user.alternateId ? { userName: user.alternateId } : {}),
  ...(user.alternateId?.includes('@') ? { emails: [{ value: user.alternateId, primary: true }] } : {}),
  ...(user.id === undefined ? {} : { externalId: user.id }),
  ...(user.displayName ? { displayName: user.displayName } : {}),
});

const eventIdOf = (uuid: string, team?: string): string =>
  team === undefined
    ? `okta-${uuid}`
    : `okta-${uuid}-${createHash('sha256').update(team).digest('hex').slice(0, 16)}`;

interface OktaHookDeps {
  directory: UserDirectoryPort;
  policy: Policy;
  log: Log;
  metrics: MetricsSink;
  suspend: SuspendAction;
  /** IAM look-ups in flight for one delivery (default 8). */
  concurrency?: number;
}

/**
 * Reads a delivery body; `undefined` when it is not a delivery (the handler answers 400).
 *
 * @example const events = readDelivery(JSON.parse(body));
 */
const readDelivery = (body: unknown): unknown[] | undefined => {
  const parsed = deliverySchema.safeParse(body);
  return parsed.success ? parsed.data.data.events : undefined;
};

/**
 * @example
 * const hook = createOktaHook({ directory, policy, log, metrics, suspend: 'offboard' });
 * const outcomes = await hook.translate(readDelivery(body) ?? [], { deadline });
 */
const createOktaHook = (deps: OktaHookDeps) => {
  const { policy, log, metrics } = deps;

  /** The user as our events name it: resolved in IAM, or by mapped name while IAM is unreachable. */
  const userOf = async (
    target: z.infer<typeof targetSchema>,
    deadline: number,
  ): Promise<{ user: EventUser } | { reason: string }> => {
    const attributes = attributesOfTarget(target);
    const identity = identityOf(policy);
    try {
      const resolution = await resolveIamUser(identity, attributes, deps.directory, { deadline });
      if (resolution.kind === 'resolved') return { user: resolution.user };
      return { reason: resolution.reason };
    } catch (error) {
      if (!isRetryable(error)) throw error;
      const mapped = mappedIamName(identity, attributes);
      if (!mapped.ok) return { reason: mapped.reason };
      log.warn('intake: IAM could not be read in time; the event names the user by IAM name', {
        source: eventSource,
        reason: redactSecrets(error instanceof Error ? error.message : String(error)),
      });
      return { user: { name: mapped.name } };
    }
  };

  const translateOne = async (raw: unknown, deadline: number): Promise<HookOutcome> => {
    const parsed = logEventSchema.safeParse(raw);
    if (!parsed.success)
      return {
        uuid: undefined,
        kind: 'skipped',
        reason: 'not a System Log event (uuid, published, eventType)',
      };
    const event: LogEvent = parsed.data;
    const skip = (reason: string): HookOutcome => ({ uuid: event.uuid, kind: 'skipped', reason });
    const result = event.outcome?.result;
    if (typeof result === 'string' && result.toUpperCase() !== 'SUCCESS')
      return skip(`outcome ${result}: nothing happened`);
    const targets = event.target ?? [];
    const userTarget = targets.find((target) => target.type === 'User');
    const groupTarget = targets.find((target) => target.type === 'UserGroup');
    const common = { occurredAt: event.published, source: eventSource };

    switch (event.eventType) {
      case 'group.user_membership.add':
      case 'group.user_membership.remove': {
        if (userTarget === undefined || !groupTarget?.displayName)
          return skip('the event has no User and UserGroup target');
        const teams = teamsOfIdpGroup(policy, groupTarget.displayName);
        if (teams.length === 0) {
          metrics.count(MetricNames.intakeUnknownGroups);
          return skip(`group ${JSON.stringify(groupTarget.displayName)} gives no team of the policy`);
        }
        const found = await userOf(userTarget, deadline);
        if ('reason' in found) {
          metrics.count(MetricNames.intakeUnmappedUsers);
          return skip(`user not mapped to an IAM user: ${found.reason}`);
        }
        const type = event.eventType.endsWith('.add') ? 'membership.added' : 'membership.removed';
        return {
          uuid: event.uuid,
          kind: 'events',
          events: teams.map((team) => {
            const id = eventIdOf(event.uuid, team);
            return { event: { ...common, id, type, user: found.user, team } as PeopleEvent, dedupId: id };
          }),
        };
      }
      case 'user.lifecycle.suspend':
      case 'user.lifecycle.deactivate': {
        if (event.eventType === 'user.lifecycle.suspend' && deps.suspend === 'ignore')
          return skip('suspensions are ignored (OKTA_SUSPEND_ACTION=ignore)');
        if (userTarget === undefined) return skip('the event has no User target');
        const found = await userOf(userTarget, deadline);
        if ('reason' in found) {
          metrics.count(MetricNames.intakeUnmappedUsers);
          return skip(`user not mapped to an IAM user: ${found.reason}`);
        }
        const id = eventIdOf(event.uuid);
        return {
          uuid: event.uuid,
          kind: 'events',
          events: [{ event: { ...common, id, type: 'user.offboarded', user: found.user }, dedupId: id }],
        };
      }
      default:
        return skip(`event type ${event.eventType} is not one we act on`);
    }
  };

  /**
   * Turns a delivery's events into ours, one outcome per event (copies of one uuid once). An IAM
   * answer that is not "no such user" propagates: the delivery is answered 5xx and Okta retries.
   */
  const translate = async (
    events: readonly unknown[],
    options: { deadline: number },
  ): Promise<HookOutcome[]> => {
    const seen = new Set<string>();
    const unique = events.filter((raw) => {
      const uuid = typeof raw === 'object' && raw !== null ? (raw as { uuid?: unknown }).uuid : undefined;
      if (typeof uuid !== 'string') return true;
      if (seen.has(uuid)) return false;
      seen.add(uuid);
      return true;
    });
    const outcomes = await mapLimit(unique, deps.concurrency ?? 8, (raw) =>
      translateOne(raw, options.deadline),
    );
    // An event we built that the handlers would refuse (a published date in the future) is skipped.
    return outcomes.map((outcome): HookOutcome => {
      if (outcome.kind !== 'events') return outcome;
      const checked = validateEvents(outcome.events.map((item) => item.event));
      return checked.ok
        ? outcome
        : {
            uuid: outcome.uuid,
            kind: 'skipped',
            reason: checked.problems.map((problem) => problem.message).join('; '),
          };
    });
  };

  /** One log record per skipped event: what was not acted on, and why. */
  const report = (outcomes: readonly HookOutcome[]): void => {
    for (const outcome of outcomes)
      if (outcome.kind === 'skipped')
        log.warn('intake: Okta event not acted on', {
          source: eventSource,
          uuid: outcome.uuid,
          reason: redactSecrets(outcome.reason),
        });
  };

  return { translate, report };
};

type OktaHook = ReturnType<typeof createOktaHook>;

export type { HookOutcome, OktaHook, OktaHookDeps, SuspendAction };
export { createOktaHook, readDelivery };

/**
 * The chaos harness: a seeded generator of people events (good and poison), an independent
 * reference model of design.md's semantics, and a delivery ledger that follows every SQS message
 * through the local stack's invocations, so a run can prove "sent = applied + dead-lettered".
 *
 * The reference model does not reuse lib/core: it states the rules of design.md its own way
 * ("the newest fact about a user and team wins; at the same instant, not-a-member wins; an
 * offboarding is a not-a-member fact for every team"), which the store's incremental reducer
 * must agree with whatever the order of delivery.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SQSEvent } from 'aws-lambda';
import queuesConfig from '../../config/queues.json' with { type: 'json' };
import type { AuthLevel, PeopleEvent, Policy } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import type { InvocationReport } from '../../lib/local/poller.ts';
import { toMessage } from '../../lib/local/producer.ts';
import type { QueueKey } from '../../lib/local/sqs.ts';
import type { DeadLetterView } from '../../lib/local/stack.ts';
import type { Log, LogAttributes } from '../../lib/observability.ts';
import { seededRandom } from '../../lib/random.ts';
import type { SimulatorSeed } from '../../lib/sim/index.ts';

const pick = <T>(random: () => number, items: readonly T[]): T => {
  const item = items[Math.floor(random() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
};

interface ChaosUser {
  id: string;
  name: string;
}

/** `chaosUsers(30)`: ids `c4a05000…01`, names `chaos-user-01`; valid IAM ids and names. */
const chaosUsers = (count: number): ChaosUser[] =>
  Array.from({ length: count }, (_, index) => ({
    id: `c4a05${String(index + 1).padStart(27, '0')}`,
    name: `chaos-user-${String(index + 1).padStart(2, '0')}`,
  }));

/**
 * The simulator seed of a chaos run: the base seed's account, service account, credentials and
 * repositories, the chaos users, and only the grants of protected users (robots): everything
 * else any user holds at the end was granted by the run.
 */
const chaosSeed = (base: SimulatorSeed, users: readonly ChaosUser[], protectedUsers: readonly string[]) => {
  const keep = new Set(protectedUsers);
  const keepGrants = (grants: SimulatorSeed['namespaces'][number]['grants']) =>
    (grants ?? []).filter((grant) => keep.has(grant.userId));
  return {
    ...base,
    description: 'chaos run: generated users, demo repositories, only protected grants',
    users: [...base.users.filter((user) => keep.has(user.id)), ...users.map((user) => ({ ...user }))],
    namespaces: base.namespaces.map((namespace) => ({
      ...namespace,
      grants: keepGrants(namespace.grants),
      repositories: namespace.repositories.map((repository) => ({
        ...repository,
        grants: keepGrants(repository.grants),
      })),
    })),
  } satisfies SimulatorSeed;
};

/** One message the run sends; `event` is set for well-formed events of known users. */
interface ChaosMessage {
  body: string;
  groupId: string;
  dedupId: string;
  queue: QueueKey;
  event?: PeopleEvent;
  /** Why a poison message must be dead-lettered (the error code expected). */
  poison?: string;
  /** A resend of an earlier message (same event id): SQS drops it. */
  resend?: boolean;
}

interface ChaosPlan {
  messages: ChaosMessage[];
  /** Distinct messages (by queue and dedup id): what SQS keeps. */
  distinct: number;
}

interface GenerateOptions {
  seed: number;
  users: readonly ChaosUser[];
  /** Teams the policy knows, plus any it does not (recorded, never granted). */
  teams: readonly string[];
  count: number;
  /**
   * How far (in minutes) an event's `occurredAt` may lag behind the run's clock: the clock moves
   * forward with the messages, each event is stamped up to this much earlier, on whole minutes,
   * so ties and stale facts are common but the story moves on.
   */
  disorderMinutes: number;
  poisonEvery: number;
  unknownUserId: string;
}

const baseInstant = Date.parse('2026-03-01T08:00:00Z');

/** The `n`-th poison message: each kind in turn. */
const poisonMessage = (unknownUserId: string, n: number): ChaosMessage[] => {
  const at = new Date(baseInstant).toISOString();
  const valid = { id: `poison-${n}`, occurredAt: at, user: { id: unknownUserId } };
  const cases: Array<{ body: string; code: string }> = [
    { body: `{"id":"poison-${n}","type":"membership.added",`, code: 'INVALID_JSON' },
    { body: JSON.stringify({ ...valid, type: 'membership.added' }), code: 'SCHEMA' },
    { body: JSON.stringify({ ...valid, type: 'user.renamed', team: 'backend' }), code: 'SCHEMA' },
    {
      body: JSON.stringify({
        ...valid,
        type: 'membership.added',
        team: 'backend',
        occurredAt: '2026-03-01 08:00',
      }),
      code: 'SCHEMA',
    },
    { body: JSON.stringify({ ...valid, type: 'membership.added', team: 'backend' }), code: 'UNKNOWN_USER' },
    // An id-only offboarding never needs IAM (it is applied, revoking nothing); a leaver known
    // only by a name that neither IAM nor the service's records know cannot be applied.
    {
      body: JSON.stringify({ ...valid, user: { name: `ghost-${n}` }, type: 'user.offboarded' }),
      code: 'UNKNOWN_USER',
    },
  ];
  const chosen = cases[n % cases.length] as (typeof cases)[number];
  return [{ ...toMessage(chosen.body), poison: chosen.code }];
};

/**
 * Generates the messages of a run in send order: joins, leaves, snapshots and offboardings of
 * random users at instants from a small pool (so arrival order and fact order disagree), resends
 * of earlier events (SQS deduplicates them), the same fact under a new id (the store does), and
 * every `poisonEvery`-th message a poison one.
 *
 * @example const { messages } = generateChaosMessages({ seed: 7, users: chaosUsers(30), teams, count: 1000, disorderMinutes: 30, poisonEvery: 100, unknownUserId });
 */
const generateChaosMessages = (options: GenerateOptions): ChaosPlan => {
  const random = seededRandom(options.seed);
  const messages: ChaosMessage[] = [];
  const good: ChaosMessage[] = [];
  let next = 0;
  const span = Math.ceil(options.count / 10);
  const instant = (n: number) => {
    const minute = Math.floor((n / options.count) * span) + Math.floor(random() * options.disorderMinutes);
    return new Date(baseInstant + minute * 60_000).toISOString();
  };
  while (messages.length < options.count) {
    const n = messages.length;
    if (n > 0 && n % options.poisonEvery === 0) {
      messages.push(...poisonMessage(options.unknownUserId, n / options.poisonEvery));
      continue;
    }
    const roll = random();
    if (roll < 0.04 && good.length > 0) {
      messages.push({ ...pick(random, good), resend: true });
      continue;
    }
    const user = pick(random, options.users);
    const who = random() < 0.8 ? { id: user.id, name: user.name } : { id: user.id };
    const id = `chaos-${options.seed}-${next++}`;
    const common = { id, occurredAt: instant(messages.length), source: 'chaos', user: who };
    let event: PeopleEvent;
    if (roll < 0.07 && good.length > 0) {
      // The same fact again under a new id: a producer retry SQS cannot recognise.
      const earlier = pick(random, good).event as PeopleEvent;
      event = { ...earlier, id };
    } else if (roll < 0.47)
      event = { ...common, type: 'membership.added', team: pick(random, options.teams) };
    else if (roll < 0.72)
      event = { ...common, type: 'membership.removed', team: pick(random, options.teams) };
    else if (roll < 0.9) {
      const teams = options.teams.filter(() => random() < 0.3);
      event = { ...common, type: 'user.teams', teams };
    } else event = { ...common, type: 'user.offboarded' };
    const message: ChaosMessage = { ...toMessage(event), event };
    messages.push(message);
    good.push(message);
  }
  // A FIFO queue keeps one message per deduplication id; a standard queue keeps every send.
  const kept = messages.map((message, index) =>
    queuesConfig.queues[message.queue].fifo
      ? `${message.queue}\n${message.dedupId}`
      : `${message.queue}\n#${index}`,
  );
  return { messages, distinct: new Set(kept).size };
};

/**
 * Sends the messages in order (per queue, batches of 10) and returns the SQS message id of each
 * distinct one: on the FIFO queue a resend within the deduplication window answers with the
 * original id; the standard queue gives every send an id of its own.
 */
const sendChaosMessages = async (
  sqs: SQSClient,
  queues: Record<QueueKey, { url: string }>,
  messages: readonly ChaosMessage[],
): Promise<Map<string, ChaosMessage>> => {
  const byMessageId = new Map<string, ChaosMessage>();
  let start = 0;
  while (start < messages.length) {
    const queue = messages[start]?.queue as QueueKey;
    const chunk: ChaosMessage[] = [];
    while (start < messages.length && chunk.length < 10 && messages[start]?.queue === queue)
      chunk.push(messages[start++] as ChaosMessage);
    const answer = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queues[queue].url,
        Entries: chunk.map((message, index) => ({
          Id: String(index),
          MessageBody: message.body,
          // Group and dedup ids on the FIFO queue only; a standard queue keeps every send.
          ...(queuesConfig.queues[queue].fifo
            ? { MessageGroupId: message.groupId, MessageDeduplicationId: message.dedupId }
            : {}),
        })),
      }),
    );
    if ((answer.Failed ?? []).length > 0)
      throw new Error(`SQS refused ${answer.Failed?.length} chaos message(s): ${answer.Failed?.[0]?.Code}`);
    for (const entry of answer.Successful ?? []) {
      const message = chunk[Number(entry.Id)];
      if (message !== undefined && entry.MessageId !== undefined && !byMessageId.has(entry.MessageId))
        byMessageId.set(entry.MessageId, message);
    }
  }
  return byMessageId;
};

// ---------------------------------------------------------------------------------------------
// The reference model.

interface ReferenceUser {
  userId: string;
  /** Teams the user is a member of at the end. */
  teams: Set<string>;
  /** The newest fact about the user is an offboarding: nothing may be held. */
  offboardedLast: boolean;
}

interface Fact {
  member: boolean;
  at: number;
}

/** The fact an event states about one team, if any. */
const factAbout = (event: PeopleEvent, team: string): Fact | undefined => {
  const at = Date.parse(event.occurredAt);
  switch (event.type) {
    case 'membership.added':
      return event.team === team ? { member: true, at } : undefined;
    case 'membership.removed':
      return event.team === team ? { member: false, at } : undefined;
    case 'user.teams':
      return { member: event.teams.includes(team), at };
    case 'user.offboarded':
      return { member: false, at };
  }
};

/** Newest wins; at the same instant, not-a-member wins (the safer answer). */
const newer = (a: Fact | undefined, b: Fact | undefined): Fact | undefined => {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (a.at !== b.at) return a.at > b.at ? a : b;
  return a.member ? b : a;
};

/**
 * What design.md says the service knows of each user after the given (applied) events, in any
 * order: the set, not the sequence, decides.
 *
 * @example referenceUsers(appliedEvents).get(userId)?.teams // Set { 'backend' }
 */
const referenceUsers = (events: readonly PeopleEvent[]): Map<string, ReferenceUser> => {
  const byUser = new Map<string, PeopleEvent[]>();
  for (const event of events) {
    const id = event.user.id as string;
    byUser.set(id, [...(byUser.get(id) ?? []), event]);
  }
  const result = new Map<string, ReferenceUser>();
  for (const [userId, list] of byUser) {
    const universe = new Set(
      list.flatMap((event) =>
        event.type === 'user.teams' ? event.teams : 'team' in event ? [event.team] : [],
      ),
    );
    const teams = new Set<string>();
    for (const team of universe) {
      let fact: Fact | undefined;
      for (const event of list) fact = newer(fact, factAbout(event, team));
      if (fact?.member) teams.add(team);
    }
    const newest = Math.max(...list.map((event) => Date.parse(event.occurredAt)));
    const offboardedLast = list.some(
      (event) => event.type === 'user.offboarded' && Date.parse(event.occurredAt) === newest,
    );
    result.set(userId, { userId, teams, offboardedLast });
  }
  return result;
};

/** Target key → user id → level: the shape of `sim.permissions()` with repos and namespaces merged. */
type Holdings = Map<string, Map<string, AuthLevel>>;

/**
 * The permissions the reference users should hold: per target, the highest level any of their
 * teams gets there in the policy; protected users are never given anything.
 */
const referenceHoldings = (users: Iterable<ReferenceUser>, policy: Policy): Holdings => {
  const holdings: Holdings = new Map();
  const protectedUsers = new Set(policy.protectedUsers);
  for (const user of users) {
    if (protectedUsers.has(user.userId)) continue;
    for (const team of user.teams) {
      if (!Object.hasOwn(policy.teams, team)) continue;
      for (const grant of policy.teams[team] ?? []) {
        const key = targetKey(grant.target);
        const target = holdings.get(key) ?? new Map<string, AuthLevel>();
        const known = target.get(user.userId);
        if (known === undefined || grant.level > known) target.set(user.userId, grant.level);
        holdings.set(key, target);
      }
    }
  }
  return holdings;
};

/** `sim.permissions()` as holdings (repository and namespace keys cannot collide). */
const holdingsOf = (snapshot: {
  repos: Record<string, Record<string, AuthLevel>>;
  namespaces: Record<string, Record<string, AuthLevel>>;
}): Holdings => {
  const holdings: Holdings = new Map();
  for (const [key, users] of [...Object.entries(snapshot.repos), ...Object.entries(snapshot.namespaces)])
    holdings.set(key, new Map(Object.entries(users)));
  return holdings;
};

/** Every (target, user, level) of `holdings` for the given users, as sorted lines for a readable diff. */
const holdingLines = (holdings: Holdings, userIds: ReadonlySet<string>): string[] => {
  const lines: string[] = [];
  for (const [key, users] of holdings)
    for (const [userId, level] of users) if (userIds.has(userId)) lines.push(`${key} ${userId} ${level}`);
  return lines.sort();
};

// ---------------------------------------------------------------------------------------------
// The delivery ledger.

type Verdict = 'applied' | 'retry' | 'dead-lettered';

interface Invocation {
  queue: QueueKey | undefined;
  messageIds: string[];
  retried: Map<string, string>;
  deadLettered: Map<string, string>;
  /** Set when the handler answered "every message will be retried". */
  everything: string | undefined;
}

interface LedgerSummary {
  invocations: number;
  crashed: number;
  timedOut: number;
  /** Completed invocations whose answer (failure count) disagreed with what the handler logged. */
  disagreements: string[];
}

interface Settlement {
  applied: Set<string>;
  /** Message id → reason (error code, or how SQS moved it). */
  deadLettered: Map<string, string>;
  /** Neither applied nor in a DLQ: must be empty. */
  lost: string[];
  /** DLQ entries that name no sent message: must be empty. */
  strangers: string[];
  /** Applied in the end, but a crashed earlier attempt had already dead-lettered it. */
  staleLetters: string[];
}

const retryMessages = new Set([
  'message will be retried',
  'permanent failure could not be dead-lettered; it will be retried',
]);

/**
 * Follows every message through the invocations of the local stack. The stack calls `crash`
 * first in each invocation (it also decides the injected crashes) and `onInvocation` last; an
 * AsyncLocalStorage opened in `crash` ties the handler's log lines in between to the invocation.
 *
 * A message's verdict is the one of the LAST invocation that completed with it (not crashed, not
 * timed out): applied unless the handler listed it for retry or dead-lettered it. In the end a
 * message is applied when its last verdict is applied; dead-lettered when it is in a DLQ (sent
 * there by the handler with its reason, or moved there by SQS after maxReceiveCount receives,
 * reason: the last failure the ledger saw); anything else is lost.
 *
 * @example
 * const ledger = new DeliveryLedger({ crashRate: 0.05, seed: 7, log: telemetry.log });
 * const stack = await startLocalStack({ crash: ledger.crash, onInvocation: ledger.onInvocation, log: ledger.log });
 */
class DeliveryLedger {
  readonly #context = new AsyncLocalStorage<Invocation>();
  readonly #random: () => number;
  readonly #crashRate: number;
  readonly #inner: Log;
  readonly #verdicts = new Map<string, Verdict>();
  readonly #lastFailure = new Map<string, string>();
  readonly #summary: LedgerSummary = { invocations: 0, crashed: 0, timedOut: 0, disagreements: [] };
  #open = 0;

  constructor(options: { crashRate: number; seed: number; log: Log }) {
    this.#random = seededRandom(options.seed);
    this.#crashRate = options.crashRate;
    this.#inner = options.log;
  }

  /** Invocations started and not yet reported. */
  get open(): number {
    return this.#open;
  }

  summary(): LedgerSummary {
    return { ...this.#summary, disagreements: [...this.#summary.disagreements] };
  }

  readonly crash = (event: SQSEvent): boolean => {
    const invocation: Invocation = {
      queue: undefined,
      messageIds: event.Records.map((record) => record.messageId),
      retried: new Map(),
      deadLettered: new Map(),
      everything: undefined,
    };
    // Everything the poller does from here for this batch (handler, log lines, onInvocation)
    // runs in this context.
    this.#context.enterWith(invocation);
    this.#open += 1;
    this.#summary.invocations += 1;
    return this.#crashRate > 0 && this.#random() < this.#crashRate;
  };

  readonly onInvocation = (queue: QueueKey, report: InvocationReport): void => {
    const invocation = this.#context.getStore();
    if (invocation === undefined) return;
    this.#open -= 1;
    invocation.queue = queue;
    for (const [id, code] of invocation.deadLettered) this.#lastFailure.set(id, `dead-lettered ${code}`);
    if (report.crashed || report.timedOut) {
      if (report.crashed) this.#summary.crashed += 1;
      if (report.timedOut) this.#summary.timedOut += 1;
      const why = report.crashed ? 'crash injected' : 'handler timed out';
      for (const id of invocation.messageIds)
        if (!invocation.deadLettered.has(id)) this.#lastFailure.set(id, why);
      return;
    }
    let retried = 0;
    for (const id of invocation.messageIds) {
      const failure = invocation.everything ?? invocation.retried.get(id);
      if (invocation.deadLettered.has(id)) this.#verdicts.set(id, 'dead-lettered');
      else if (failure !== undefined) {
        retried += 1;
        this.#verdicts.set(id, 'retry');
        this.#lastFailure.set(id, failure);
      } else this.#verdicts.set(id, 'applied');
    }
    if (retried !== report.failures)
      this.#summary.disagreements.push(
        `${queue}: the handler answered ${report.failures} failure(s) but logged ${retried} retried message(s)`,
      );
  };

  readonly log: Log = {
    debug: (message, attributes) => this.#inner.debug(message, attributes),
    info: (message, attributes) => this.#inner.info(message, attributes),
    warn: (message, attributes) => {
      this.#note(message, attributes);
      this.#inner.warn(message, attributes);
    },
    error: (message, attributes) => {
      this.#note(message, attributes);
      this.#inner.error(message, attributes);
    },
  };

  #note(message: string, attributes: LogAttributes | undefined): void {
    const invocation = this.#context.getStore();
    if (invocation === undefined) return;
    const id = typeof attributes?.messageId === 'string' ? attributes.messageId : undefined;
    const code = String(attributes?.errorCode ?? 'unknown');
    if (message === 'message dead-lettered' && id !== undefined) invocation.deadLettered.set(id, code);
    else if (retryMessages.has(message) && id !== undefined) invocation.retried.set(id, code);
    else if (message.startsWith('batch could not be handled')) invocation.everything = code;
  }

  /** Settles every sent message against what the DLQs hold after the queues drained. */
  settle(sent: ReadonlyMap<string, unknown>, letters: readonly DeadLetterView[]): Settlement {
    const inDlq = new Map<string, DeadLetterView>();
    for (const letter of letters) {
      const id = letter.attributes.sourceMessageId ?? letter.messageId;
      // A letter with a reason is kept over a copy SQS moved without one.
      if (!inDlq.has(id) || letter.attributes.errorCode !== undefined) inDlq.set(id, letter);
    }
    const settlement: Settlement = {
      applied: new Set(),
      deadLettered: new Map(),
      lost: [],
      strangers: [...inDlq.keys()].filter((id) => !sent.has(id)),
      staleLetters: [],
    };
    for (const id of sent.keys()) {
      const verdict = this.#verdicts.get(id);
      const letter = inDlq.get(id);
      if (verdict === 'applied') {
        settlement.applied.add(id);
        if (letter !== undefined) settlement.staleLetters.push(id);
      } else if (letter?.attributes.errorCode !== undefined)
        settlement.deadLettered.set(id, `${letter.attributes.errorCode}: ${letter.attributes.errorMessage}`);
      else if (letter !== undefined)
        settlement.deadLettered.set(
          id,
          `moved by SQS after maxReceiveCount receives; last failure: ${this.#lastFailure.get(id) ?? 'unknown'}`,
        );
      else settlement.lost.push(`${id} (last verdict ${verdict ?? 'none'})`);
    }
    return settlement;
  }
}

export type { ChaosMessage, ChaosPlan, ChaosUser, Holdings, ReferenceUser, Settlement };
export {
  chaosSeed,
  chaosUsers,
  DeliveryLedger,
  generateChaosMessages,
  holdingLines,
  holdingsOf,
  referenceHoldings,
  referenceUsers,
  seededRandom,
  sendChaosMessages,
};

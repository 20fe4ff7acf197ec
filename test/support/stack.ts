/**
 * Helpers for the end-to-end and interleaving tests: the demo users, a seed with a few more of
 * them, people-event factories with a strictly increasing clock, views of the simulator's
 * permissions per user, an in-memory DLQ sender, and a SWR port that can be
 * paused at chosen points of a pipeline run.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeadLetter, DeadLetterSender } from '../../lib/dlq.ts';
import type {
  AuthLevel,
  CallOptions,
  IamUser,
  SwrPermissionsPort,
  Target,
  TargetAccess,
  UserAuth,
} from '../../lib/domain.ts';
import { seededRandom } from '../../lib/random.ts';
import type { PermissionsSnapshot, RequestLogEntry, SimulatorSeed } from '../../lib/sim/index.ts';
import { loadSeed } from '../../lib/sim/index.ts';

/** The users of `config/demo-seed.json`. */
const demoUsers = {
  alice: { id: 'a11ce000000000000000000000000001', name: 'alice' },
  bob: { id: 'b0b00000000000000000000000000002', name: 'bob' },
  carol: { id: 'ca201000000000000000000000000003', name: 'carol' },
  dave: { id: 'da7e0000000000000000000000000004', name: 'dave' },
  erin: { id: 'e21e0000000000000000000000000005', name: 'erin' },
  frank: { id: 'f2a4c000000000000000000000000006', name: 'frank' },
  grace: { id: '92ace000000000000000000000000007', name: 'grace' },
  heidi: { id: '4e1d1000000000000000000000000008', name: 'heidi' },
  robot: { id: 'c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1', name: 'ci-robot' },
} as const satisfies Record<string, IamUser>;

/** The service account of the demo seed (the caller: SWR reports it as `self_auth`). */
const serviceAccountId = '906a7849018c838c99439e9b42253724';

/** `extraUser(3)` → `{ id: 'eeee…0003', name: 'extra3' }`: users no seed grant mentions. */
const extraUser = (n: number): IamUser => ({
  id: `eeee${n.toString(16).padStart(28, '0')}`,
  name: `extra${n}`,
});

/** The demo seed plus `extraUser(1)` … `extraUser(count)`, so each test case can own a clean user. */
const seedWithExtraUsers = (count: number): SimulatorSeed => {
  const seed = loadSeed();
  const extras = Array.from({ length: count }, (_, index) => extraUser(index + 1));
  return { ...seed, users: [...seed.users, ...extras] };
};

type UserRef = { id: string; name: string } | { id: string } | { name: string };

interface EventOptions {
  /** Default: a fresh unique id. */
  id?: string;
  /** Default: the factory's next instant. */
  occurredAt?: string;
  source?: string;
}

/**
 * People events with a clock that moves one second per event, starting an hour ago, so that
 * events made later are newer facts (and never "in the future" for the receiver).
 *
 * @example
 * const events = peopleEventFactory();
 * await stack.send([events.join(demoUsers.frank, 'frontend'), events.offboard(demoUsers.frank)]);
 */
const peopleEventFactory = (options: { startAt?: number; stepMs?: number; prefix?: string } = {}) => {
  let at = options.startAt ?? Date.now() - 60 * 60 * 1000;
  const stepMs = options.stepMs ?? 1000;
  const prefix = options.prefix ?? randomUUID().slice(0, 8);
  let counter = 0;
  const next = () => {
    at += stepMs;
    return new Date(at).toISOString();
  };
  const fields = <U extends UserRef>(user: U, extra: EventOptions) => {
    counter += 1;
    return {
      id: extra.id ?? `${prefix}-${counter}`,
      occurredAt: extra.occurredAt ?? next(),
      ...(extra.source === undefined ? {} : { source: extra.source }),
      user: { ...user },
    };
  };
  return {
    /** The instant the next event would get, without using it. */
    peek: () => new Date(at + stepMs).toISOString(),
    join: <U extends UserRef>(user: U, team: string, extra: EventOptions = {}) => ({
      ...fields(user, extra),
      type: 'membership.added' as const,
      team,
    }),
    leave: <U extends UserRef>(user: U, team: string, extra: EventOptions = {}) => ({
      ...fields(user, extra),
      type: 'membership.removed' as const,
      team,
    }),
    offboard: <U extends UserRef>(user: U, extra: EventOptions = {}) => ({
      ...fields(user, extra),
      type: 'user.offboarded' as const,
    }),
    teams: <U extends UserRef>(user: U, teams: string[], extra: EventOptions = {}) => ({
      ...fields(user, extra),
      type: 'user.teams' as const,
      teams,
    }),
  };
};

/** Every level one user holds, by target key (`ns/repo` or `ns`); targets without one are absent. */
const grantsOf = (snapshot: PermissionsSnapshot, userId: string): Record<string, AuthLevel> => {
  const held: Record<string, AuthLevel> = {};
  for (const [key, users] of [...Object.entries(snapshot.repos), ...Object.entries(snapshot.namespaces)]) {
    const level = users[userId];
    if (level !== undefined) held[key] = level;
  }
  return held;
};

/** SWR writes (POST, PATCH, DELETE on a permission route) in a request log, as `METHOD target`. */
const writesIn = (log: readonly RequestLogEntry[]): string[] =>
  log
    .filter((entry) => entry.method !== 'GET' && entry.route.endsWith('/access'))
    .map((entry) => {
      const path = decodeURIComponent(entry.path.split('?')[0] ?? '');
      const repo = /^\/v2\/manage\/namespaces\/([^/]+)\/repos\/([^/]+)\/access$/.exec(path);
      const namespace = /^\/v2\/manage\/namespaces\/([^/]+)\/access$/.exec(path);
      const target = repo ? `${repo[1]}/${(repo[2] ?? '').replaceAll('$', '/')}` : (namespace?.[1] ?? path);
      return `${entry.method} ${target}`;
    });

/** A DLQ sender that keeps the letters in memory (the pipeline-level tests have no SQS). */
const memoryDeadLetters = (): DeadLetterSender & { letters: DeadLetter[] } => {
  const letters: DeadLetter[] = [];
  return {
    letters,
    async send(batch) {
      letters.push(...batch);
      return { sent: batch.map((letter) => letter.messageId), failed: [] };
    },
  };
};

/** Where a run of the pipeline can be held: the SWR port sees each of them. */
const PausePoints = {
  /** The first GET of the run (the store is already updated). */
  beforeFirstRead: 'before-first-read',
  /** Every GET of the first read round is answered, no write has started. */
  beforeFirstWrite: 'before-first-write',
  /** A grant (POST) has been answered; the re-check of the store comes next. */
  afterGrant: 'after-grant',
} as const;

type PausePoint = (typeof PausePoints)[keyof typeof PausePoints];

interface GatedSwr extends SwrPermissionsPort {
  /** Resolves when the run reaches the point and is held there. */
  readonly reached: Promise<void>;
  /** Lets the held call (and every later one) go on. */
  release(): void;
  /** True once the point was reached. */
  readonly paused: boolean;
}

/**
 * Wraps a SWR port so that the first time the pipeline reaches `point` it waits for `release()`.
 * `reads` is how many GETs the first read round makes (the touched targets of the batch):
 * `before-first-write` holds the first write, which comes only after all of them.
 *
 * @example
 * const gated = gateSwr(services.swr, PausePoints.afterGrant);
 * const run = processRecords(records, { ...deps, swr: gated }, settings, deadline);
 * await gated.reached; await offboardEverything(); gated.release(); await run;
 */
const gateSwr = (inner: SwrPermissionsPort, point: PausePoint): GatedSwr => {
  let reachedResolve: () => void = () => undefined;
  const reached = new Promise<void>((resolve) => {
    reachedResolve = resolve;
  });
  let releaseResolve: () => void = () => undefined;
  const released = new Promise<void>((resolve) => {
    releaseResolve = resolve;
  });
  let paused = false;
  const hold = async () => {
    if (paused) return released;
    paused = true;
    reachedResolve();
    return released;
  };
  return {
    reached,
    get paused() {
      return paused;
    },
    release: () => releaseResolve(),
    async getAccess(target: Target, options?: CallOptions): Promise<TargetAccess> {
      if (point === PausePoints.beforeFirstRead) await hold();
      return inner.getAccess(target, options);
    },
    async grant(target: Target, users: UserAuth[], options?: CallOptions): Promise<void> {
      if (point === PausePoints.beforeFirstWrite) await hold();
      await inner.grant(target, users, options);
      if (point === PausePoints.afterGrant) await hold();
    },
    async change(target: Target, users: UserAuth[], options?: CallOptions): Promise<void> {
      if (point === PausePoints.beforeFirstWrite) await hold();
      await inner.change(target, users, options);
    },
    async revoke(target: Target, userIds: string[], options?: CallOptions): Promise<void> {
      if (point === PausePoints.beforeFirstWrite) await hold();
      await inner.revoke(target, userIds, options);
    },
    listRepositories: (namespace: string, options?: CallOptions) =>
      inner.listRepositories(namespace, options),
  };
};

/**
 * A SWR port that waits a random few milliseconds before each call (from `random`, so a run can
 * be replayed from its seed): shuffles how two concurrent pipelines interleave.
 */
const jitterSwr = (inner: SwrPermissionsPort, random: () => number, maxMs: number): SwrPermissionsPort => {
  const jitter = () => sleep(Math.floor(random() * maxMs));
  return {
    getAccess: async (target, options) => {
      await jitter();
      return inner.getAccess(target, options);
    },
    grant: async (target, users, options) => {
      await jitter();
      await inner.grant(target, users, options);
    },
    change: async (target, users, options) => {
      await jitter();
      await inner.change(target, users, options);
    },
    revoke: async (target, userIds, options) => {
      await jitter();
      await inner.revoke(target, userIds, options);
    },
    listRepositories: async (namespace, options) => {
      await jitter();
      return inner.listRepositories(namespace, options);
    },
  };
};

export type { GatedSwr, PausePoint, UserRef };
export {
  demoUsers,
  extraUser,
  gateSwr,
  grantsOf,
  jitterSwr,
  memoryDeadLetters,
  PausePoints,
  peopleEventFactory,
  seededRandom,
  seedWithExtraUsers,
  serviceAccountId,
  writesIn,
};

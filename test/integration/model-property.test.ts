/**
 * The whole pipeline (parse → resolve → store → read → plan → execute) with the real undici
 * client against the simulator, compared with an independent reference model: whatever the
 * events, their duplicates, their delivery order and their batching, SWR ends up holding what
 * design.md says it should.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { AuthLevel, Policy, PolicyGrant, Target } from '../../lib/domain.ts';
import { permissionOfLevel } from '../../lib/domain.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { type PipelineRecord, processRecords } from '../../lib/pipeline.ts';
import { parseSeed, type Simulator, type SimulatorSeed, startSimulator } from '../../lib/sim/index.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { createSwrServices, type SwrServices } from '../../lib/swr/index.ts';
import {
  expectedPermissions,
  type ModelEvent,
  type ModelPolicy,
  type Permissions,
  policyTargetKeys,
  restrictTo,
} from '../support/reference-model.ts';

// --- the world -------------------------------------------------------------------------------

const people = {
  ana: 'a0a00000000000000000000000000001',
  ben: 'b0b00000000000000000000000000002',
  cem: 'c0c00000000000000000000000000003',
  /** Protected: events may name it, nothing may change it. */
  bot: 'd0d00000000000000000000000000004',
  /** Never named by an event: its grants must stay as they are. */
  eve: 'e0e00000000000000000000000000005',
} as const;

type Person = keyof typeof people;
const eventPeople: readonly Person[] = ['ana', 'ben', 'cem', 'bot'];
const nameOf: Record<Person, string> = { ana: 'ana', ben: 'ben', cem: 'cem', bot: 'deploy-bot', eve: 'eve' };

const modelPolicy: ModelPolicy = {
  teams: {
    backend: { 'apps/api/server': 3, 'apps/api/worker': 1, shared: 1 },
    frontend: { 'apps/web': 3, 'apps/api/server': 1 },
    platform: { 'apps/ops/ci-runner': 7, 'apps/api/worker': 3, shared: 3 },
  },
  protectedUsers: [people.bot],
};

/** Events may also name a team the policy does not know: it is recorded and grants nothing. */
const teams = ['backend', 'frontend', 'platform', 'ghost'] as const;

const targetOf = (key: string): Target => {
  const slash = key.indexOf('/');
  return slash === -1
    ? { kind: 'namespace', namespace: key }
    : { kind: 'repo', namespace: key.slice(0, slash), repository: key.slice(slash + 1) };
};

const policy: Policy = {
  version: 1,
  sourcePath: 'test/model-property.policy',
  protectedUsers: [...modelPolicy.protectedUsers],
  managedNamespaces: [],
  teams: Object.fromEntries(
    Object.entries(modelPolicy.teams).map(([team, grants]) => [
      team,
      Object.entries(grants).map(
        ([key, level]): PolicyGrant => ({
          target: targetOf(key),
          permission: permissionOfLevel(level),
          level,
          exclusive: false,
        }),
      ),
    ]),
  ),
};

const grant = (who: Person, auth: AuthLevel) => ({ userId: people[who], auth });

const seed: SimulatorSeed = parseSeed({
  description: 'reference-model property test',
  account: { name: 'model-corp', id: 'f0000000000000000000000000000001' },
  project: { name: 'eu-west-101', id: 'f0000000000000000000000000000002' },
  serviceAccount: {
    id: 'f0000000000000000000000000000003',
    name: 'swr-sync',
    password: 'model-password',
    staticToken: 'model-static-token-0000000001',
  },
  users: (Object.keys(people) as Person[]).map((who) => ({ id: people[who], name: nameOf[who] })),
  namespaces: [
    {
      name: 'apps',
      repositories: [
        { name: 'api/server', grants: [grant('eve', 3)] },
        { name: 'api/worker', grants: [grant('bot', 1)] },
        { name: 'web', grants: [grant('bot', 7)] },
        { name: 'ops/ci-runner' },
        // Outside the policy: nobody may touch it, not even for users the events name.
        { name: 'legacy', grants: [grant('ana', 3), grant('eve', 7)] },
      ],
    },
    { name: 'shared', grants: [grant('eve', 1), grant('bot', 3)], repositories: [{ name: 'misc' }] },
  ],
});

/** What the seed holds, in the simulator's snapshot shape. */
const seedPermissions = (): Permissions => {
  const out: Permissions = { repos: {}, namespaces: {} };
  for (const ns of seed.namespaces) {
    out.namespaces[ns.name] = Object.fromEntries((ns.grants ?? []).map((g) => [g.userId, g.auth]));
    for (const repo of ns.repositories)
      out.repos[`${ns.name}/${repo.name}`] = Object.fromEntries(
        (repo.grants ?? []).map((g) => [g.userId, g.auth]),
      );
  }
  return out;
};

const policyKeys = policyTargetKeys(modelPolicy);
const outsideKeys = ['apps/legacy', 'shared/misc'];

// --- events and deliveries -------------------------------------------------------------------

/** Few instants, so ties and stale facts are common; two of them are the same instant. */
const instants = [
  '2026-10-01T09:00:00Z',
  '2026-10-01T10:00:00Z',
  '2026-10-01T11:00:00+01:00',
  '2026-10-01T11:00:00Z',
  '2026-10-01T12:00:00Z',
] as const;

type Naming = 'id' | 'name' | 'both';

interface Scenario {
  events: ModelEvent[];
  /** How each event names its user (exercises the IAM look-ups). */
  naming: Naming[];
  /** Indices of events delivered a second time. */
  duplicates: number[];
  /** Sort keys that shuffle the deliveries. */
  order: number[];
  /** Batch sizes, used in turn. */
  batchSizes: number[];
}

const wireBody = (event: ModelEvent, naming: Naming): string => {
  const person = (Object.keys(people) as Person[]).find((who) => people[who] === event.userId) as Person;
  const user =
    naming === 'id'
      ? { id: event.userId }
      : naming === 'name'
        ? { name: nameOf[person] }
        : { id: event.userId, name: nameOf[person] };
  const { userId: _userId, ...rest } = event;
  return JSON.stringify({ ...rest, user, source: 'model-property' });
};

/** Deliveries (events and duplicates), shuffled and cut into batches of 1–10 records. */
const batchesOf = (scenario: Scenario): PipelineRecord[][] => {
  const indices = [...scenario.events.keys(), ...scenario.duplicates.map((i) => i % scenario.events.length)];
  const deliveries = indices
    .map((index, n) => ({ index, n, key: scenario.order[n % scenario.order.length] ?? 0 }))
    .sort((a, b) => a.key - b.key || a.n - b.n)
    .map(({ index, n }): PipelineRecord => {
      const event = scenario.events[index] as ModelEvent;
      return {
        messageId: `m-${n}`,
        groupId: event.userId,
        body: wireBody(event, scenario.naming[index] ?? 'both'),
        receiveCount: 1,
      };
    });
  const batches: PipelineRecord[][] = [];
  for (let at = 0, turn = 0; at < deliveries.length; turn += 1) {
    const size = scenario.batchSizes[turn % scenario.batchSizes.length] ?? 10;
    batches.push(deliveries.slice(at, at + size));
    at += size;
  }
  return batches;
};

const eventArbitrary = fc.record({
  who: fc.constantFrom(...eventPeople),
  at: fc.constantFrom(...instants),
  kind: fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        type: fc.constant('membership.added' as const),
        team: fc.constantFrom(...teams),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        type: fc.constant('membership.removed' as const),
        team: fc.constantFrom(...teams),
      }),
    },
    { weight: 1, arbitrary: fc.record({ type: fc.constant('user.offboarded' as const) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        type: fc.constant('user.teams' as const),
        teams: fc.subarray([...teams]),
      }),
    },
  ),
});

type EventDraft = { who: Person; at: string; kind: Record<string, unknown> };

/** Ids by position: a duplicate delivery is the same event, a new draft never is. */
const numbered = (drafts: EventDraft[]): ModelEvent[] =>
  drafts.map(
    ({ who, at, kind }, i) => ({ id: `ev-${i}`, userId: people[who], occurredAt: at, ...kind }) as ModelEvent,
  );

const scenarioArbitrary: fc.Arbitrary<Scenario> = fc.record({
  events: fc.array(eventArbitrary, { minLength: 10, maxLength: 40 }).map(numbered),
  naming: fc.array(fc.constantFrom<Naming>('id', 'name', 'both'), { minLength: 40, maxLength: 40 }),
  duplicates: fc.array(fc.nat(39), { maxLength: 12 }),
  order: fc.array(fc.integer(), { minLength: 52, maxLength: 52 }),
  batchSizes: fc.array(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 8 }),
});

// --- running the pipeline --------------------------------------------------------------------

const opened: Array<{ sim: Simulator; services: SwrServices }> = [];

afterAll(async () => {
  await Promise.all(opened.splice(0).map(({ sim, services }) => services.close().then(() => sim.close())));
});

interface RunResult {
  policyTargets: Permissions;
  outside: Permissions;
  problems: string[];
}

/** A fresh simulator and store; every batch through `processRecords`, one after another. */
const runPipeline = async (batches: readonly PipelineRecord[][]): Promise<RunResult> => {
  const sim = await startSimulator({ seed });
  const services = createSwrServices({
    swrEndpoint: sim.swrUrl,
    iamEndpoint: sim.iamUrl,
    auth: { kind: 'token', token: seed.serviceAccount.staticToken as string },
    retry: { baseDelayMs: 5, maxDelayMs: 50 },
  });
  const entry = { sim, services };
  opened.push(entry);
  try {
    const telemetry = createMemoryTelemetry();
    const deps = {
      swr: services.swr,
      directory: services.users,
      store: createMemoryStore(),
      policy,
      deadLetters: undefined,
      log: telemetry.log,
      metrics: telemetry.metrics,
      now: () => new Date(),
    };
    const problems: string[] = [];
    for (const batch of batches) {
      const report = await processRecords(
        batch,
        deps,
        { actor: 'model-property', concurrency: 4, dryRun: false },
        Date.now() + 30_000,
      );
      for (const failure of [...report.retried, ...report.deadLettered, ...report.undeliverable])
        problems.push(`${failure.messageId}: ${failure.error.code} ${failure.error.message}`);
    }
    const permissions = sim.permissions();
    return {
      policyTargets: restrictTo(permissions, policyKeys),
      outside: restrictTo(permissions, outsideKeys),
      problems,
    };
  } finally {
    opened.splice(opened.indexOf(entry), 1);
    await services.close();
    await sim.close();
  }
};

const checkScenario = async (events: readonly ModelEvent[], batches: readonly PipelineRecord[][]) => {
  // Act
  const result = await runPipeline(batches);

  // Assess
  expect(result.problems).toEqual([]);
  expect(result.policyTargets).toEqual(
    expectedPermissions({ policy: modelPolicy, initial: seedPermissions(), events }),
  );
  expect(result.outside).toEqual(restrictTo(seedPermissions(), outsideKeys));
};

// --- tests -----------------------------------------------------------------------------------

const event = (
  id: string,
  who: Person,
  occurredAt: string,
  rest:
    | { type: 'membership.added' | 'membership.removed'; team: string }
    | { type: 'user.offboarded' }
    | { type: 'user.teams'; teams: string[] },
): ModelEvent => ({ id, userId: people[who], occurredAt, ...rest }) as ModelEvent;

const recordsOf = (events: readonly ModelEvent[], prefix: string): PipelineRecord[] =>
  events.map((e, n) => ({
    messageId: `${prefix}-${n}`,
    groupId: e.userId,
    body: wireBody(e, 'both'),
    receiveCount: 1,
  }));

describe('reference model', () => {
  const t = (hour: number) => `2026-10-01T${String(hour).padStart(2, '0')}:00:00Z`;

  it.each([
    {
      name: 'a removal beats a join at the same instant, even written in another zone',
      events: [
        event('a', 'ana', t(10), { type: 'membership.added', team: 'frontend' }),
        event('b', 'ana', '2026-10-01T11:00:00+01:00', { type: 'membership.removed', team: 'frontend' }),
      ],
      ana: {},
    },
    {
      name: 'the highest level of the current teams wins',
      events: [
        event('a', 'ana', t(9), { type: 'membership.added', team: 'frontend' }),
        event('b', 'ana', t(9), { type: 'membership.added', team: 'backend' }),
      ],
      ana: { 'apps/api/server': 3, 'apps/api/worker': 1, 'apps/web': 3, shared: 1 },
    },
    {
      name: 'an offboarding hides a join at its own instant',
      events: [
        event('a', 'ana', t(10), { type: 'membership.added', team: 'platform' }),
        event('b', 'ana', t(10), { type: 'user.offboarded' }),
      ],
      ana: {},
    },
    {
      name: 'a snapshot drops the teams it does not list and an older join stays stale',
      events: [
        event('a', 'ana', t(9), { type: 'membership.added', team: 'backend' }),
        event('b', 'ana', t(11), { type: 'user.teams', teams: ['frontend'] }),
        event('c', 'ana', t(10), { type: 'membership.added', team: 'platform' }),
      ],
      ana: { 'apps/api/server': 1, 'apps/web': 3 },
    },
    {
      name: 'a duplicate id counts once',
      events: [
        event('a', 'ana', t(9), { type: 'membership.added', team: 'frontend' }),
        event('a', 'ana', t(12), { type: 'membership.removed', team: 'frontend' }),
      ],
      ana: { 'apps/api/server': 1, 'apps/web': 3 },
    },
  ])('$name', ({ events, ana }) => {
    // Act
    const want = expectedPermissions({ policy: modelPolicy, initial: seedPermissions(), events });

    // Assess
    const held = Object.fromEntries(
      policyKeys.flatMap((key) => {
        const level = (key.includes('/') ? want.repos : want.namespaces)[key]?.[people.ana];
        return level === undefined ? [] : [[key, level]];
      }),
    );
    expect(held).toEqual(ana);
  });

  it('leaves protected users and users no event names as they were', () => {
    // Prepare
    const events = [
      event('a', 'bot', t(9), { type: 'user.offboarded' }),
      event('b', 'ben', t(9), { type: 'membership.added', team: 'backend' }),
    ];

    // Act
    const want = expectedPermissions({ policy: modelPolicy, initial: seedPermissions(), events });

    // Assess
    expect(want.repos['apps/api/server']).toEqual({ [people.eve]: 3, [people.ben]: 3 });
    expect(want.repos['apps/web']).toEqual({ [people.bot]: 7 });
    expect(want.namespaces.shared).toEqual({ [people.eve]: 1, [people.bot]: 3, [people.ben]: 1 });
  });
});

describe('pipeline against the reference model', () => {
  it('ends in the model state after tombstone, rehire and a late stale join (regression)', async () => {
    // Prepare
    const t = (hour: number) => `2026-10-01T${String(hour).padStart(2, '0')}:00:00Z`;
    const events = [
      event('join-backend', 'ana', t(9), { type: 'membership.added', team: 'backend' }),
      event('snapshot', 'ben', t(10), { type: 'user.teams', teams: ['platform'] }),
      event('offboard', 'ana', t(11), { type: 'user.offboarded' }),
      event('rehire', 'ana', t(12), { type: 'membership.added', team: 'frontend' }),
      event('late-join', 'ana', t(10), { type: 'membership.added', team: 'platform' }),
      event('stale-join', 'ben', t(9), { type: 'membership.added', team: 'backend' }),
      event('bot-join', 'bot', t(9), { type: 'membership.added', team: 'backend' }),
    ];
    const [joinBackend, snapshot, offboard, rehire, lateJoin, staleJoin, botJoin] = events as [
      ModelEvent,
      ModelEvent,
      ModelEvent,
      ModelEvent,
      ModelEvent,
      ModelEvent,
      ModelEvent,
    ];
    const batches = [
      recordsOf([joinBackend, snapshot, botJoin], 'b1'),
      recordsOf([offboard], 'b2'),
      recordsOf([rehire, offboard], 'b3'),
      recordsOf([lateJoin, staleJoin], 'b4'),
    ];

    // Assess: the model itself says what a person would.
    const want = expectedPermissions({ policy: modelPolicy, initial: seedPermissions(), events });
    expect(want).toEqual({
      repos: {
        'apps/api/server': { [people.eve]: 3, [people.ana]: 1 },
        'apps/api/worker': { [people.bot]: 1, [people.ben]: 3 },
        'apps/web': { [people.bot]: 7, [people.ana]: 3 },
        'apps/ops/ci-runner': { [people.ben]: 7 },
      },
      namespaces: { shared: { [people.eve]: 1, [people.bot]: 3, [people.ben]: 3 } },
    });
    await checkScenario(events, batches);
  });

  it('ends in the model state for random events, duplicates, orders and batches', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArbitrary, async (scenario) => {
        await checkScenario(scenario.events, batchesOf(scenario));
      }),
      { numRuns: 25 },
    );
  }, 120_000);
});

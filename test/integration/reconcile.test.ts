import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { desiredLevels } from '../../lib/core/desired.ts';
import { loadPolicyFile } from '../../lib/core/policy.ts';
import type {
  AuthLevel,
  MembershipStorePort,
  Policy,
  ResolvedEvent,
  Target,
  UserRecord,
} from '../../lib/domain.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import { processRecords } from '../../lib/pipeline.ts';
import { type ReconcileOptions, runReconcile } from '../../lib/reconcile/reconcile.ts';
import { loadSeed, type Simulator, startSimulator } from '../../lib/sim/index.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { createSwrServices, type SwrServices } from '../../lib/swr/index.ts';

const seed = loadSeed();
const robot = 'c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1';
const teamsOfDemo: Record<string, string> = {
  alice: 'backend',
  bob: 'backend',
  carol: 'frontend',
  dave: 'frontend',
  erin: 'data',
  frank: 'data',
  grace: 'platform',
  heidi: 'platform',
};

const idOf = (name: string): string => {
  const user = seed.users.find((entry) => entry.name === name);
  if (user === undefined) throw new Error(`no seeded user ${name}`);
  return user.id;
};

let policy: Policy;
let sim: Simulator;
let services: SwrServices;
let store: MembershipStorePort;
let clock = Date.parse('2026-11-21T03:00:00Z');
const now = () => new Date(clock);

const event = (
  name: string,
  fields:
    | { type: 'membership.added'; team: string }
    | { type: 'user.teams'; teams: string[] }
    | { type: 'user.offboarded' },
): ResolvedEvent => {
  clock += 1_000;
  return {
    ...fields,
    id: `ev-${name}-${clock}`,
    occurredAt: new Date(clock).toISOString(),
    user: { id: idOf(name), name },
  } as ResolvedEvent;
};

/** Every demo user in their demo team. */
const storeOfDemo = async (): Promise<MembershipStorePort> => {
  const demo = createMemoryStore({ now });
  for (const [name, team] of Object.entries(teamsOfDemo))
    await demo.apply({ id: idOf(name), name }, [event(name, { type: 'membership.added', team })]);
  return demo;
};

const recordsOf = async (from: MembershipStorePort): Promise<UserRecord[]> => {
  const records: UserRecord[] = [];
  for await (const record of from.list()) records.push(record);
  return records;
};

const keyOf = (target: Target) =>
  target.kind === 'repo' ? `${target.namespace}/${target.repository}` : target.namespace;

/** What the policy gives the stored users, plus the robot's seeded grants (never touched). */
const expectedPermissions = async () => {
  const repos: Record<string, Record<string, AuthLevel>> = {};
  const namespaces: Record<string, Record<string, AuthLevel>> = {};
  for (const ns of seed.namespaces) {
    namespaces[ns.name] = Object.fromEntries((ns.grants ?? []).map((g) => [g.userId, g.auth as AuthLevel]));
    for (const repo of ns.repositories ?? []) repos[`${ns.name}/${repo.name}`] = {};
  }
  // Policy targets hold exactly what the policy gives (the robot is protected: kept).
  for (const grants of Object.values(policy.teams))
    for (const { target } of grants) {
      const into = target.kind === 'repo' ? repos : namespaces;
      into[keyOf(target)] = Object.fromEntries(
        Object.entries(into[keyOf(target)] ?? {}).filter(([userId]) => userId === robot),
      );
    }
  for (const record of await recordsOf(store))
    for (const [key, level] of desiredLevels(record, policy)) {
      const into = key.includes('/') ? repos : namespaces;
      into[key] = { ...into[key], [record.userId]: level };
    }
  const sorted = (map: Record<string, Record<string, AuthLevel>>) =>
    Object.fromEntries(
      Object.entries(map).map(([key, users]) => [
        key,
        Object.fromEntries(Object.entries(users).sort(([a], [b]) => (a < b ? -1 : 1))),
      ]),
    );
  return { repos: sorted(repos), namespaces: sorted(namespaces) };
};

const reconcile = async (options: Partial<ReconcileOptions> = {}) => {
  const telemetry = createMemoryTelemetry();
  const report = await runReconcile(
    { swr: services.swr, store, policy, log: telemetry.log, metrics: telemetry.metrics, now },
    {
      dryRun: false,
      allowMassRevoke: false,
      massRevoke: { maxCount: 50, maxShare: 0.2 },
      concurrency: 4,
      deadline: Date.now() + 30_000,
      ...options,
    },
  );
  return { report, telemetry };
};

const writes = () => sim.requestLog().filter((entry) => entry.method !== 'GET');

/** Everything started and not yet closed: closed after each test, and after all as a backstop. */
const open: Array<{ close(): Promise<void> }> = [];
const closeAll = async () => {
  for (const item of open.splice(0).reverse()) await item.close();
};

beforeEach(async () => {
  policy ??= await loadPolicyFile('config/demo-policy.yaml');
  sim = await startSimulator({ seed });
  open.push(sim);
  services = createSwrServices({
    swrEndpoint: sim.swrUrl,
    iamEndpoint: sim.iamUrl,
    auth: { kind: 'token', token: seed.serviceAccount.staticToken ?? '' },
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 },
    timeouts: { requestTimeoutMs: 5_000 },
  });
  open.push(services);
  store = await storeOfDemo();
});

afterEach(closeAll);
afterAll(closeAll);

describe('reconcile against the simulator', () => {
  it('fixes the seeded drift, then drift made by hand, then does nothing', async () => {
    // Prepare: the seed's own drift (heidi's hand-made manage grant, frank with nothing)
    const first = await reconcile();
    expect(first.report.ok).toBe(true);
    expect(sim.permissions()).toEqual(await expectedPermissions());
    sim.setPermission(
      { kind: 'repo', namespace: 'core', repository: 'api/server' },
      idOf('alice'),
      undefined,
    );
    sim.setPermission({ kind: 'repo', namespace: 'core', repository: 'web/frontend' }, idOf('bob'), 7);
    sim.setPermission({ kind: 'repo', namespace: 'data', repository: 'etl/jobs' }, idOf('erin'), 1);
    sim.setPermission({ kind: 'namespace', namespace: 'tools' }, idOf('grace'), 7);
    sim.resetCounts();

    // Act
    const { report } = await reconcile();

    // Assess
    expect(sim.permissions()).toEqual(await expectedPermissions());
    expect(report.totals).toMatchObject({ granted: 1, changed: 2, revoked: 1, failed: 0, skipped: 0 });
    expect(writes()).toHaveLength(4);

    // Act: a run with nothing to do
    sim.resetCounts();
    const again = await reconcile();

    // Assess
    expect(writes()).toEqual([]);
    expect(again.report.totals.planned).toEqual({ grant: 0, change: 0, revoke: 0 });
  });

  it('stops a run that would wipe the namespaces, and applies it when told to', async () => {
    // Prepare: in sync; then a broken HR snapshot says nobody is in any team
    await reconcile();
    for (const name of Object.keys(teamsOfDemo))
      await store.apply({ id: idOf(name), name }, [event(name, { type: 'user.teams', teams: [] })]);
    const before = sim.permissions();
    sim.resetCounts();

    // Act
    const { report, telemetry } = await reconcile();

    // Assess
    expect(report.guard.status).toBe('blocked');
    expect(report.guard.revokes).toBeGreaterThan(10);
    expect(writes()).toEqual([]);
    expect(sim.permissions()).toEqual(before);
    expect(telemetry.counters.get(MetricNames.massRevokeBlocked)).toBe(1);
    expect(telemetry.lines).toContainEqual(expect.objectContaining({ level: 'ERROR', alarm: 'mass-revoke' }));

    // Act: a person checked it and allows it
    const allowed = await reconcile({ allowMassRevoke: true });

    // Assess: only the protected robot keeps anything
    expect(allowed.report.guard.status).toBe('overridden');
    const left = sim.permissions();
    const holders = [...Object.values(left.repos), ...Object.values(left.namespaces)].flatMap(Object.keys);
    expect(new Set(holders)).toEqual(new Set([robot]));
  });

  it('skips a target it cannot read and revokes nothing there', async () => {
    // Prepare: alice leaves backend; core/api/server answers 500 to every read
    await reconcile();
    await store.apply({ id: idOf('alice'), name: 'alice' }, [
      event('alice', { type: 'user.teams', teams: [] }),
    ]);
    sim.setFaults({ failTargets: [{ target: 'core/api/server', method: 'GET', status: 500 }] });

    // Act
    const { report } = await reconcile();

    // Assess
    const server = report.targets.find((target) => target.key === 'core/api/server');
    expect(server?.skipped?.code).toMatch(/^SVCSTG\.SWR\.50/);
    expect(sim.permissions().repos['core/api/server']?.[idOf('alice')]).toBe(3);
    expect(sim.permissions().repos['core/api/worker']?.[idOf('alice')]).toBeUndefined();
    expect(report.ok).toBe(false);
  });
});

describe('the offboarding sweep', () => {
  const offboardingRecord = (user: { id?: string; name?: string }) => ({
    messageId: 'msg-off-1',
    groupId: 'alice',
    receiveCount: 1,
    body: JSON.stringify({
      type: 'user.offboarded',
      id: 'ev-off-alice',
      occurredAt: new Date(clock).toISOString(),
      user,
    }),
  });

  const offboard = async () => {
    const telemetry = createMemoryTelemetry();
    return processRecords(
      [offboardingRecord({ name: 'alice' })],
      {
        swr: services.swr,
        directory: services.users,
        store,
        policy,
        deadLetters: undefined,
        log: telemetry.log,
        metrics: telemetry.metrics,
        now,
      },
      { actor: 'offboard', concurrency: 4, dryRun: false },
      Date.now() + 30_000,
    );
  };

  it('removes an offboarded user from a repository the policy does not name', async () => {
    // Prepare: a repository no team mentions, where alice and bob were given access by hand
    sim.addRepository('core', 'legacy/tool');
    const legacy: Target = { kind: 'repo', namespace: 'core', repository: 'legacy/tool' };
    sim.setPermission(legacy, idOf('alice'), 3);
    sim.setPermission(legacy, idOf('bob'), 1);
    sim.setPermission({ kind: 'namespace', namespace: 'data' }, idOf('alice'), 1);

    // Act
    const report = await offboard();

    // Assess
    expect(report.applied).toEqual(['msg-off-1']);
    const after = sim.permissions();
    expect(after.repos['core/legacy/tool']).toEqual({ [idOf('bob')]: 1 });
    const alice = idOf('alice');
    const holdsSomething = [...Object.values(after.repos), ...Object.values(after.namespaces)].some(
      (users) => alice in users,
    );
    expect(holdsSomething).toBe(false);
    expect(sim.requestLog().some((entry) => entry.path.startsWith('/v2/manage/repos?'))).toBe(true);
  });

  it('retries the offboarding when a managed namespace cannot be listed', async () => {
    // Prepare
    sim.addRepository('data', 'legacy/dump');
    sim.setPermission({ kind: 'repo', namespace: 'data', repository: 'legacy/dump' }, idOf('alice'), 3);
    sim.setFaults({ failTargets: [{ kind: 'list', target: 'data', status: 500 }] });

    // Act
    const report = await offboard();

    // Assess
    expect(report.applied).toEqual([]);
    expect(report.response.batchItemFailures).toEqual([{ itemIdentifier: 'msg-off-1' }]);
    expect(sim.permissions().repos['data/legacy/dump']?.[idOf('alice')]).toBe(3);
    // What could be done was done: alice lost her policy grants at once.
    expect(sim.permissions().repos['core/api/server']?.[idOf('alice')]).toBeUndefined();

    // Act: the listing works again; SQS delivers the message again
    sim.setFaults({ failTargets: [] });
    const retried = await offboard();

    // Assess
    expect(retried.applied).toEqual(['msg-off-1']);
    expect(sim.permissions().repos['data/legacy/dump']?.[idOf('alice')]).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import type {
  AuthLevel,
  MembershipStorePort,
  PermissionName,
  Policy,
  PolicyGrant,
  Target,
  TargetAccess,
  UserAuth,
  UserRecord,
} from '../../lib/domain.ts';
import { AuthLevels, targetKey } from '../../lib/domain.ts';
import { ErrorCodes, StoreError, SyncError } from '../../lib/errors.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import { type ReconcileOptions, runReconcile } from '../../lib/reconcile/reconcile.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { grant, userId, userRecordFactory } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';

const startedAt = new Date('2026-11-21T03:00:00Z');

/** A FakeSwr whose reads of some targets fail. */
class ReadFailingSwr extends FakeSwr {
  readonly readFailures = new Map<string, Error>();

  override async getAccess(target: Target): Promise<TargetAccess> {
    const failure = this.readFailures.get(targetKey(target));
    if (failure !== undefined) throw failure;
    return super.getAccess(target);
  }
}

type Holdings = Record<string, Record<number, PermissionName>>;

/** A FakeSwr holding `{ 'core/api/server': { 1: 'write' } }`; `self` is the caller's number. */
const swrFactory = (holdings: Holdings, self?: number): ReadFailingSwr => {
  const swr = new ReadFailingSwr();
  swr.selfUserId = self === undefined ? undefined : userId(self);
  for (const [key, users] of Object.entries(holdings))
    swr.state.set(
      key,
      new Map(
        Object.entries(users).map(([n, permission]): [string, UserAuth] => [
          userId(Number(n)),
          { user_id: userId(Number(n)), user_name: `user${n}`, auth: AuthLevels[permission] as AuthLevel },
        ]),
      ),
    );
  return swr;
};

/** What the fake holds now, in the same shape (empty targets left out). */
const holdingsOf = (swr: FakeSwr): Holdings => {
  const out: Holdings = {};
  for (const [key, users] of [...swr.state.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (users.size === 0) continue;
    out[key] = Object.fromEntries(
      [...users.values()].map((user) => [
        Number.parseInt(user.user_id, 16),
        user.auth === 7 ? 'manage' : user.auth === 3 ? 'write' : 'read',
      ]),
    );
  }
  return out;
};

const policyOf = (teams: Record<string, PolicyGrant[]>, protectedUsers: number[] = []): Policy => ({
  version: 1,
  sourcePath: 'test/policy.yaml',
  protectedUsers: protectedUsers.map(userId),
  managedNamespaces: [],
  teams,
});

/** platform: core/api/server write (exclusive), tools read; backend: core/api/worker write. */
const policy = policyOf(
  {
    platform: [grant('core/api/server', 'write', true), grant('tools', 'read')],
    backend: [grant('core/api/worker', 'write'), grant('core/api/server', 'read', true)],
  },
  [5],
);

const optionsFactory = (overrides: Partial<ReconcileOptions> = {}): ReconcileOptions => ({
  dryRun: false,
  allowMassRevoke: false,
  massRevoke: { maxCount: 50, maxShare: 1 },
  concurrency: 4,
  // Real time: the stores bound their calls by the clock on the wall, whatever the test clock says.
  deadline: Date.now() + 60_000,
  ...overrides,
});

const run = async (options: {
  swr: FakeSwr;
  records?: UserRecord[];
  store?: MembershipStorePort;
  policy?: Policy;
  reconcile?: Partial<ReconcileOptions>;
}) => {
  const telemetry = createMemoryTelemetry();
  const store = options.store ?? createMemoryStore({ initial: options.records ?? [] });
  const report = await runReconcile(
    {
      swr: options.swr,
      store,
      policy: options.policy ?? policy,
      log: telemetry.log,
      metrics: telemetry.metrics,
      now: () => startedAt,
    },
    optionsFactory(options.reconcile),
  );
  return { report, telemetry, store };
};

describe('runReconcile fixes drift', () => {
  it('grants what is missing, changes a wrong level and revokes what no team gives any more', async () => {
    // Prepare: 1 is platform (server write, tools read) but holds server read and no tools;
    // 2 left backend and still holds worker write; 3 is backend and holds nothing.
    const swr = swrFactory({ 'core/api/server': { 1: 'read' }, 'core/api/worker': { 2: 'write' } });
    const records = [
      userRecordFactory({ id: 1, teams: { platform: true } }),
      userRecordFactory({ id: 2, teams: { backend: false } }),
      userRecordFactory({ id: 3, teams: { backend: true } }),
    ];

    // Act
    const { report } = await run({ swr, records });

    // Assess
    expect(holdingsOf(swr)).toEqual({
      'core/api/server': { 1: 'write', 3: 'read' },
      'core/api/worker': { 3: 'write' },
      tools: { 1: 'read' },
    });
    expect(swr.calls.map((call) => `${call.method} ${call.target} ${call.users.length}`)).toEqual(
      expect.arrayContaining([
        'grant core/api/server 1',
        'change core/api/server 1',
        'grant core/api/worker 1',
        'revoke core/api/worker 1',
        'grant tools 1',
      ]),
    );
    expect(swr.calls).toHaveLength(5);
    expect(report.ok).toBe(true);
    expect(report.guard.status).toBe('ok');
    expect(report.changes).toHaveLength(5);
  });

  it('coalesces the users of one target and action into one call', async () => {
    // Prepare: three platform members, none granted yet
    const swr = swrFactory({});
    const records = [1, 2, 3].map((id) => userRecordFactory({ id, teams: { platform: true } }));

    // Act
    await run({ swr, records });

    // Assess
    const grants = swr.calls.filter((call) => call.target === 'core/api/server');
    expect(grants).toHaveLength(1);
    expect(grants[0]?.users).toHaveLength(3);
  });

  it('revokes from a known user a grant none of their teams gives (a removed policy entry)', async () => {
    // Prepare: 1 is only in backend, yet holds platform's tools read
    const swr = swrFactory({
      tools: { 1: 'read' },
      'core/api/server': { 1: 'read' },
      'core/api/worker': { 1: 'write' },
    });

    // Act
    const { report } = await run({ swr, records: [userRecordFactory({ id: 1, teams: { backend: true } })] });

    // Assess
    expect(holdingsOf(swr)).toEqual({ 'core/api/server': { 1: 'read' }, 'core/api/worker': { 1: 'write' } });
    expect(report.totals.revoked).toBe(1);
  });

  it('does nothing on a second run', async () => {
    // Prepare
    const swr = swrFactory({ 'core/api/server': { 1: 'read' } });
    const records = [userRecordFactory({ id: 1, teams: { platform: true } })];
    await run({ swr, records });
    swr.calls.length = 0;

    // Act
    const { report } = await run({ swr, records });

    // Assess
    expect(swr.calls).toEqual([]);
    expect(report.totals.planned).toEqual({ grant: 0, change: 0, revoke: 0 });
  });

  it('revokes everything a tombstoned user still holds on policy targets', async () => {
    // Prepare
    const swr = swrFactory({ 'core/api/server': { 4: 'write' }, tools: { 4: 'read' } });
    const records = [
      userRecordFactory({ id: 4, teams: { platform: false }, offboardedAt: '2026-11-20T12:00:00Z' }),
    ];

    // Act
    await run({ swr, records });

    // Assess
    expect(holdingsOf(swr)).toEqual({});
  });
});

describe('stale grants of users the store does not know', () => {
  it('are revoked on an exclusive target and kept on a shared one', async () => {
    // Prepare: 9 is unknown; core/api/server is exclusive, core/api/worker and tools are not
    const swr = swrFactory({
      'core/api/server': { 9: 'manage' },
      'core/api/worker': { 9: 'write' },
      tools: { 9: 'read' },
    });

    // Act
    const { report } = await run({ swr });

    // Assess
    expect(holdingsOf(swr)).toEqual({ 'core/api/worker': { 9: 'write' }, tools: { 9: 'read' } });
    expect(report.users).toEqual({ stored: 0, unknownOnExclusive: 1 });
    expect(report.targets.find((target) => target.key === 'core/api/server')).toMatchObject({
      exclusive: true,
      revoked: 1,
    });
  });

  it('treats a namespace as exclusive when any of its entries is', async () => {
    // Prepare: tools is exclusive for one team only
    const swr = swrFactory({ tools: { 9: 'read' } });
    const shared = policyOf({
      platform: [grant('tools', 'read')],
      sre: [grant('tools', 'write', true)],
    });

    // Act
    await run({ swr, policy: shared });

    // Assess
    expect(holdingsOf(swr)).toEqual({});
  });
});

describe('protected users and the caller itself', () => {
  it('are never granted, changed or revoked', async () => {
    // Prepare: 5 is protected (stored in platform, and holding an unwanted level); 99 is the
    // caller, holding manage on an exclusive target; 8 is protected and unknown on it too.
    const swr = swrFactory({ 'core/api/server': { 5: 'manage', 99: 'manage' } }, 99);
    const records = [userRecordFactory({ id: 5, teams: { platform: true } })];
    const withEight = policyOf(policy.teams, [5, 8]);
    swr.state.get('core/api/server')?.set(userId(8), { user_id: userId(8), user_name: 'user8', auth: 1 });

    // Act
    const { report } = await run({ swr, records, policy: withEight });

    // Assess
    expect(swr.calls).toEqual([]);
    expect(holdingsOf(swr)).toEqual({ 'core/api/server': { 5: 'manage', 8: 'read', 99: 'manage' } });
    expect(report.targets.find((target) => target.key === 'core/api/server')?.found?.users).toBe(2);
  });
});

describe('a failed read', () => {
  it('skips its target (no revoke) and still fixes the others', async () => {
    // Prepare: 2 left backend; its worker grant would be revoked, but worker cannot be read
    const swr = swrFactory({ 'core/api/worker': { 2: 'write' }, 'core/api/server': { 9: 'read' } });
    swr.readFailures.set(
      'core/api/worker',
      new SyncError('GET failed: 503', { code: 'SVCSTG.SWR.5000090', retryable: true }),
    );
    const records = [userRecordFactory({ id: 2, teams: { backend: false } })];

    // Act
    const { report, telemetry } = await run({ swr, records });

    // Assess
    expect(holdingsOf(swr)).toEqual({ 'core/api/worker': { 2: 'write' } });
    expect(swr.calls.map((call) => call.target)).toEqual(['core/api/server']);
    const worker = report.targets.find((target) => target.key === 'core/api/worker');
    expect(worker?.skipped).toEqual({ code: 'SVCSTG.SWR.5000090', reason: 'GET failed: 503' });
    expect(worker?.found).toBeUndefined();
    expect(report.totals.skipped).toBe(1);
    expect(report.ok).toBe(false);
    expect(telemetry.lines.filter((line) => line.message === 'reconcile report')).toHaveLength(1);
  });

  it('of the store stops the run before any call', async () => {
    // Prepare
    const swr = swrFactory({ 'core/api/server': { 9: 'read' } });
    const store: MembershipStorePort = {
      ...createMemoryStore(),
      list: () => ({
        [Symbol.asyncIterator]: () => ({
          next: () => Promise.reject(new Error('connection reset')),
        }),
      }),
    };

    // Act
    const outcome = run({ swr, store });

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(StoreError);
    await expect(outcome).rejects.toMatchObject({ code: ErrorCodes.store, retryable: true });
    expect(swr.calls).toEqual([]);
  });
});

describe('the mass-revoke guard', () => {
  /** Ten unknown users on the exclusive target, one kept on a shared one: 10 of 11 grants go. */
  const wipe = () =>
    swrFactory({
      'core/api/server': Object.fromEntries(Array.from({ length: 10 }, (_, i) => [20 + i, 'write'])),
      tools: { 40: 'read' },
    });

  describe.each([
    {
      name: 'count',
      massRevoke: { maxCount: 9, maxShare: 1 },
      reason: /10 revocations exceed the limit of 9/,
    },
    {
      name: 'share',
      massRevoke: { maxCount: 50, maxShare: 0.5, floor: 5 },
      reason: /10 of 11 grants \(90\.9%\)/,
    },
  ])('over the $name limit', ({ massRevoke, reason }) => {
    it('applies nothing, alarms and says so', async () => {
      // Prepare
      const swr = wipe();
      const records = [userRecordFactory({ id: 1, teams: { platform: true } })];

      // Act
      const { report, telemetry } = await run({ swr, records, reconcile: { massRevoke } });

      // Assess
      expect(swr.calls).toEqual([]);
      expect(report.guard).toMatchObject({ status: 'blocked', revokes: 10, found: 11 });
      expect(report.guard.reason).toMatch(reason);
      expect(report.totals.planned).toEqual({ grant: 2, change: 0, revoke: 10 });
      expect(report.ok).toBe(false);
      // Nothing applied: the report lists the first plan's changes, each marked as not applied.
      expect(report.changes.length).toBeGreaterThan(0);
      expect(report.changes.every((change) => change.dryRun)).toBe(true);
      expect(telemetry.counters.get(MetricNames.massRevokeBlocked)).toBe(1);
      expect(telemetry.lines).toContainEqual(
        expect.objectContaining({ level: 'ERROR', alarm: 'mass-revoke', revokes: 10, found: 11 }),
      );
    });

    it('applies everything when allowMassRevoke is passed', async () => {
      // Prepare
      const swr = wipe();

      // Act
      const { report, telemetry } = await run({ swr, reconcile: { massRevoke, allowMassRevoke: true } });

      // Assess
      expect(holdingsOf(swr)).toEqual({ tools: { 40: 'read' } });
      expect(report.guard.status).toBe('overridden');
      expect(report.totals.revoked).toBe(10);
      expect(report.ok).toBe(true);
      expect(telemetry.counters.get(MetricNames.massRevokeBlocked)).toBeUndefined();
    });
  });

  it('lets a run at exactly the limits through', async () => {
    // Prepare: 10 revocations of 11 grants, limits 10 and 10/11
    const swr = wipe();

    // Act
    const { report } = await run({ swr, reconcile: { massRevoke: { maxCount: 10, maxShare: 10 / 11 } } });

    // Assess
    expect(report.guard.status).toBe('ok');
    expect(report.totals.revoked).toBe(10);
  });
});

describe('a dry run', () => {
  it('plans and reports but calls nothing', async () => {
    // Prepare
    const swr = swrFactory({ 'core/api/server': { 9: 'read' } });
    const records = [userRecordFactory({ id: 1, teams: { platform: true } })];

    // Act
    const { report } = await run({ swr, records, reconcile: { dryRun: true } });

    // Assess
    expect(swr.calls).toEqual([]);
    expect(report.totals.planned).toEqual({ grant: 2, change: 0, revoke: 1 });
    expect(report.totals).toMatchObject({ granted: 0, changed: 0, revoked: 0 });
    expect(report.changes.every((change) => change.dryRun)).toBe(true);
    expect(report.changes).toHaveLength(3);
  });
});

describe('a concurrent offboarding', () => {
  it('leaves no grant of the run behind (the moved user is planned again)', async () => {
    // Prepare: 1 is platform and lacks its grants; while reconcile grants, 1 is offboarded and
    // the offboard function has already revoked (nothing, at that moment).
    const swr = swrFactory({});
    const store = createMemoryStore({ initial: [userRecordFactory({ id: 1, teams: { platform: true } })] });
    let offboarded = false;
    swr.beforeWrite = () => {
      if (offboarded) return;
      offboarded = true;
      void store.apply({ id: userId(1), name: 'user1' }, [
        {
          type: 'user.offboarded',
          id: 'ev-off',
          occurredAt: '2026-11-21T02:59:59Z',
          user: { id: userId(1), name: 'user1' },
        },
      ]);
    };

    // Act
    const { report } = await run({ swr, store });

    // Assess
    expect(holdingsOf(swr)).toEqual({});
    expect(report.replanned).toBe(1);
    expect(report.totals).toMatchObject({ granted: 2, revoked: 2 });
  });
});

describe('the report', () => {
  it('counts what was found per target and in total', async () => {
    // Prepare
    const swr = swrFactory({
      'core/api/server': { 1: 'write', 2: 'manage', 9: 'read' },
      'core/api/worker': { 2: 'write' },
    });
    const records = [
      userRecordFactory({ id: 1, teams: { platform: true } }),
      userRecordFactory({ id: 2, teams: { backend: true } }),
    ];

    // Act
    const { report, telemetry } = await run({ swr, records });

    // Assess
    expect(report.targets.map((target) => [target.key, target.found])).toEqual([
      ['tools', { users: 0, read: 0, write: 0, manage: 0 }],
      ['core/api/server', { users: 3, read: 1, write: 1, manage: 1 }],
      ['core/api/worker', { users: 1, read: 0, write: 1, manage: 0 }],
    ]);
    expect(report.totals).toEqual({
      targets: 3,
      skipped: 0,
      found: 4,
      planned: { grant: 1, change: 1, revoke: 1 },
      granted: 1,
      changed: 1,
      revoked: 1,
      failed: 0,
    });
    expect(report).toMatchObject({ startedAt: startedAt.toISOString(), durationMs: 0, actor: 'reconcile' });
    const logged = telemetry.lines.filter((line) => line.message === 'reconcile report');
    expect(logged).toHaveLength(1);
    expect(logged[0]?.reconcile).toMatchObject({ totals: report.totals, guard: report.guard });
    expect(logged[0]?.reconcile).not.toHaveProperty('changes');
    expect(telemetry.counters.get(MetricNames.grants)).toBe(1);
    expect(telemetry.counters.get(MetricNames.revokes)).toBe(1);
  });

  it('counts the users of a failed call and keeps its error', async () => {
    // Prepare
    const swr = swrFactory({});
    swr.failTarget(
      'core/api/server',
      new SyncError('grant on core/api/server failed', {
        code: 'SVCSTG.SWR.4039001',
        retryable: false,
        target: 'core/api/server',
      }),
    );
    const records = [userRecordFactory({ id: 1, teams: { platform: true } })];

    // Act
    const { report } = await run({ swr, records });

    // Assess
    const server = report.targets.find((target) => target.key === 'core/api/server');
    expect(server).toMatchObject({ granted: 0, failed: 1 });
    expect(server?.errors).toEqual([
      {
        action: 'grant',
        code: 'SVCSTG.SWR.4039001',
        reason: 'grant on core/api/server failed',
        retryable: false,
        users: 1,
      },
    ]);
    expect(report.totals).toMatchObject({ granted: 1, failed: 1 });
    expect(report.ok).toBe(false);
  });
});

describe('runReconcile applies time-bound access', () => {
  const user = { id: userId(7), name: 'user7' };
  const before = new Date('2026-11-20T12:00:00Z');

  it('applies a join that has become due and removes a membership that has expired', async () => {
    // Prepare: backend until 02:00 (expired at the run), platform from 02:30 (due at the run).
    const swr = swrFactory({ 'core/api/worker': { 7: 'write' } });
    const store = createMemoryStore();
    await store.apply(
      user,
      [
        {
          id: 'join-backend',
          type: 'membership.added',
          occurredAt: '2026-11-20T09:00:00Z',
          expiresAt: '2026-11-21T02:00:00Z',
          user,
          team: 'backend',
        },
        {
          id: 'join-platform',
          type: 'membership.added',
          occurredAt: '2026-11-20T09:00:00Z',
          effectiveAt: '2026-11-21T02:30:00Z',
          user,
          team: 'platform',
        },
      ],
      before,
    );

    // Act
    const { report } = await run({ swr, store });

    // Assess
    expect(report.ok).toBe(true);
    expect(holdingsOf(swr)).toEqual({ 'core/api/server': { 7: 'write' }, tools: { 7: 'read' } });
    const stored = await store.get(user.id);
    expect(stored?.pending ?? []).toEqual([]);
    expect(stored?.teams.backend?.member).toBe(false);
    expect(stored?.teams.platform?.member).toBe(true);
  });

  it('computes due facts in a dry run without writing them', async () => {
    // Prepare
    const swr = swrFactory({});
    const store = createMemoryStore();
    await store.apply(
      user,
      [
        {
          id: 'join-platform',
          type: 'membership.added',
          occurredAt: '2026-11-20T09:00:00Z',
          effectiveAt: '2026-11-21T02:30:00Z',
          user,
          team: 'platform',
        },
      ],
      before,
    );

    // Act
    const { report } = await run({ swr, store, reconcile: { dryRun: true } });

    // Assess
    expect(report.totals.planned.grant).toBeGreaterThan(0);
    expect(holdingsOf(swr)).toEqual({});
    expect((await store.get(user.id))?.pending).toHaveLength(1);
  });
});

import { describe, expect, it } from 'vitest';
import { plan } from '../../lib/core/planner.ts';
import type { CallOptions, Policy, Target, TargetAccess, UserDirectoryPort } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import { SyncError } from '../../lib/errors.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { createMemorySweepProgress } from '../../lib/offboarding/progress.ts';
import { sweepOffboarded } from '../../lib/offboarding/sweep.ts';
import { processRecords } from '../../lib/pipeline.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { actualFactory, batchUserFactory, grant, target, userId } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';

// The test clock starts at the real time: the stores bound their calls by the clock on the wall.
const now = new Date();

/** A FakeSwr with repositories of its own (holding nothing yet), counting listings and reads. */
class ListingSwr extends FakeSwr {
  readonly listed: string[] = [];
  readonly reads: string[] = [];
  readonly listFailures = new Map<string, Error>();
  readonly readFailures = new Map<string, Error>();
  readonly repositories = new Set<string>();
  /** Called on every read (a test clock moves here). */
  onRead: (() => void) | undefined;

  override async listRepositories(namespace: string, _options?: CallOptions): Promise<string[]> {
    this.listed.push(namespace);
    const failure = this.listFailures.get(namespace);
    if (failure !== undefined) throw failure;
    const held = await super.listRepositories(namespace);
    const own = [...this.repositories]
      .filter((key) => key.startsWith(`${namespace}/`))
      .map((key) => key.slice(namespace.length + 1));
    return [...new Set([...held, ...own])];
  }

  override async getAccess(target: Target): Promise<TargetAccess> {
    const key = targetKey(target);
    this.reads.push(key);
    this.onRead?.();
    const failure = this.readFailures.get(key);
    if (failure !== undefined) throw failure;
    return super.getAccess(target);
  }

  holders(key: string): string[] {
    return [...(this.state.get(key)?.keys() ?? [])].map((id) => String(Number.parseInt(id, 16)));
  }
}

const policy: Policy = {
  version: 1,
  sourcePath: 'test/policy.yaml',
  protectedUsers: [],
  managedNamespaces: ['core', 'tools'],
  teams: { platform: [grant('core/api/server', 'write')] },
};

const busy = (where: string) =>
  new SyncError(`${where}: 409 system busy`, { code: 'SVCSTG.SWR.4090023', retryable: true, target: where });

const leaver = (n: number) => ({
  ...batchUserFactory({ id: n, after: {}, offboardedAt: '2026-11-21T08:00:00Z' }),
  offboardingInBatch: true,
});

const sweep = (
  swr: ListingSwr,
  options: {
    progress?: ReturnType<typeof createMemorySweepProgress>;
    deadline?: number;
    pageSize?: number;
    clock?: () => Date;
  } = {},
  users = [leaver(1)],
) =>
  sweepOffboarded(
    users,
    {
      swr,
      store: createMemoryStore(),
      policy,
      now: options.clock ?? (() => now),
      progress: options.progress ?? createMemorySweepProgress(),
    },
    {
      concurrency: 2,
      deadline: options.deadline ?? now.getTime() + 60_000,
      dryRun: false,
      saveReserveMs: 0,
      ...(options.pageSize === undefined ? {} : { pageSize: options.pageSize }),
    },
  );

describe('sweepOffboarded', () => {
  it('revokes the leaver everywhere in the policy and the managed namespaces, nobody else, and proves it', async () => {
    // Prepare
    const swr = new ListingSwr()
      .hold('core/api/server', 1)
      .hold('core/legacy/tool', 1)
      .hold('core/legacy/tool', 2)
      .hold('tools', 1, 1)
      .hold('other/repo', 1);

    // Act
    const result = await sweep(swr);

    // Assess
    expect(result.users.get(userId(1))).toMatchObject({ done: true });
    expect(swr.holders('core/legacy/tool')).toEqual(['2']);
    expect(swr.holders('core/api/server')).toEqual([]);
    expect(swr.holders('tools')).toEqual([]);
    expect(swr.holders('other/repo')).toEqual(['1']);
    expect(result.proofs).toEqual([
      expect.objectContaining({
        userId: userId(1),
        offboardedAt: '2026-11-21T08:00:00Z',
        provenAt: now.toISOString(),
      }),
    ]);
  });

  it('continues where a delivery that ran out of time stopped, without reading the checked pages again', async () => {
    // Prepare: 30 repositories in core, pages of 5; the clock moves 1 s per read, the deadline
    // allows about 12 reads in the first delivery.
    const swr = new ListingSwr();
    for (let i = 0; i < 30; i += 1) swr.repositories.add(`core/repo-${String(i).padStart(2, '0')}`);
    swr.hold('core/repo-27', 1);
    const progress = createMemorySweepProgress();
    let clock = now.getTime();
    swr.onRead = () => {
      clock += 1_000;
    };

    // Act
    const first = await sweep(swr, {
      progress,
      deadline: now.getTime() + 12_500,
      pageSize: 5,
      clock: () => new Date(clock),
    });
    const readsFirst = swr.reads.length;
    const checkedBefore = progress.all()[0]?.namespaces.core?.after ?? '';
    swr.reads.length = 0;
    clock = now.getTime();
    const second = await sweep(swr, { progress, pageSize: 5, clock: () => new Date(clock) });

    // Assess
    expect(first.users.get(userId(1))).toMatchObject({
      done: false,
      error: { code: 'SWEEP_IN_PROGRESS', retryable: true },
    });
    expect(readsFirst).toBeGreaterThan(0);
    expect(checkedBefore).toMatch(/^core\/repo-\d\d$/);
    expect(second.users.get(userId(1))).toMatchObject({ done: true });
    expect(swr.reads.filter((key) => key.startsWith('core/') && key <= checkedBefore)).toEqual([]);
    expect(swr.holders('core/repo-27')).toEqual([]);
  });

  it('keeps a user unfinished when a listing fails, after revoking what it could', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/legacy/tool', 1).hold('tools/lint', 1);
    swr.listFailures.set('tools', busy('tools'));

    // Act
    const result = await sweep(swr);

    // Assess
    const outcome = result.users.get(userId(1));
    expect(outcome).toMatchObject({
      done: false,
      error: { code: 'SVCSTG.SWR.4090023', retryable: true, target: 'tools' },
    });
    expect(outcome?.error?.message).toMatch(/managed namespace tools could not be listed/);
    expect(swr.holders('core/legacy/tool')).toEqual([]);
    expect(swr.holders('tools/lint')).toEqual(['1']);
    expect(result.proofs).toEqual([]);
  });

  it('never counts an unreadable repository as checked: the cursor stays before it', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/b', 1);
    swr.repositories.add('core/a');
    swr.readFailures.set('core/a', busy('core/a'));
    const progress = createMemorySweepProgress();

    // Act
    const first = await sweep(swr, { progress, pageSize: 1 });
    swr.readFailures.clear();
    const second = await sweep(swr, { progress, pageSize: 1 });

    // Assess
    expect(first.users.get(userId(1))?.done).toBe(false);
    expect(swr.holders('core/b')).toEqual([]);
    expect(second.users.get(userId(1))?.done).toBe(true);
    expect(second.proofs).toHaveLength(1);
  });

  it('does nothing for a user already swept for this tombstone', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/legacy/tool', 1);
    const progress = createMemorySweepProgress();
    await sweep(swr, { progress });
    swr.reads.length = 0;
    swr.listed.length = 0;

    // Act
    const again = await sweep(swr, { progress });

    // Assess
    expect(again.users.get(userId(1))).toMatchObject({ done: true });
    expect(swr.reads).toEqual([]);
    expect(swr.listed).toEqual([]);
    expect(again.proofs).toEqual([]);
  });

  it('reads each target once per delivery: a policy target is not read again by its namespace page', async () => {
    // Prepare: core/api/server is a policy target and a repository of the managed namespace core.
    const swr = new ListingSwr().hold('core/api/server', 1).hold('core/legacy/tool', 2);
    swr.repositories.add('core/zeta');

    // Act
    const result = await sweep(swr, { pageSize: 2 });

    // Assess: read once, except the read-back after the revoke on it.
    expect(result.users.get(userId(1))).toMatchObject({ done: true });
    const readsOf = (key: string) => swr.reads.filter((read) => read === key).length;
    expect(readsOf('core/api/server')).toBe(2);
    expect(swr.calls.filter((call) => call.method === 'revoke').map((call) => call.target)).toEqual([
      'core/api/server',
    ]);
    for (const key of ['core', 'core/legacy/tool', 'core/zeta', 'tools']) expect(readsOf(key)).toBe(1);
    expect(swr.holders('core/api/server')).toEqual([]);
  });

  it('reuses the caller reads, and reads again a target whose earlier read failed', async () => {
    // Prepare: the caller read core/api/server (nothing of user 1 there) and failed on core/legacy/tool.
    const swr = new ListingSwr().hold('core/legacy/tool', 1);
    const initial = {
      actual: new Map<string, TargetAccess>([['core/api/server', { selfUserId: undefined, users: [] }]]),
      readErrors: new Map([['core/legacy/tool', busy('core/legacy/tool')]]),
    };

    // Act
    const result = await sweepOffboarded(
      [leaver(1)],
      { swr, store: createMemoryStore(), policy, now: () => now, progress: createMemorySweepProgress() },
      { concurrency: 2, deadline: now.getTime() + 60_000, dryRun: false, saveReserveMs: 0 },
      initial,
    );

    // Assess
    expect(result.users.get(userId(1))).toMatchObject({ done: true });
    expect(swr.reads).not.toContain('core/api/server');
    expect(swr.reads.filter((key) => key === 'core/legacy/tool').length).toBeGreaterThanOrEqual(1);
    expect(swr.holders('core/legacy/tool')).toEqual([]);
  });

  it('lists each namespace once for every leaver of the batch', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/legacy/tool', 1).hold('core/legacy/tool', 2);

    // Act
    const result = await sweep(swr, {}, [leaver(1), leaver(2), leaver(3)]);

    // Assess
    expect(swr.listed.sort()).toEqual(['core', 'tools']);
    expect([...result.users.values()].every((outcome) => outcome.done)).toBe(true);
    expect(swr.holders('core/legacy/tool')).toEqual([]);
  });
});

describe('plan with extra targets', () => {
  it('revokes an offboarded user from a repository the policy does not name, and no one else', () => {
    // Prepare: 1 leaves; 2 (staying) also holds the unmanaged repository
    const legacy = target('core/legacy/tool');
    const users = [
      { ...batchUserFactory({ id: 1, after: {}, offboardingInBatch: true }), extraTargets: [legacy] },
      batchUserFactory({ id: 2, after: { platform: true } }),
    ];
    const actual = actualFactory({
      'core/api/server': { 1: 'write', 2: 'write' },
      'core/legacy/tool': { 1: 'read', 2: 'read' },
    });

    // Act
    const result = plan({ users, policy, actual, now });

    // Assess
    expect(
      result.calls.map((call) => [call.action, targetKey(call.target), call.changes.map((c) => c.userId)]),
    ).toEqual([
      ['revoke', 'core/api/server', [userId(1)]],
      ['revoke', 'core/legacy/tool', [userId(1)]],
    ]);
  });

  it('skips an unreadable extra target and blocks the message that needed it', () => {
    // Prepare
    const legacy = target('core/legacy/tool');
    const users = [
      { ...batchUserFactory({ id: 1, after: {}, offboardingInBatch: true }), extraTargets: [legacy] },
    ];

    // Act
    const result = plan({ users, policy, actual: actualFactory({ 'core/api/server': {} }), now });

    // Assess
    expect(result.skipped).toEqual([legacy]);
    expect(result.blocked).toEqual([{ messageId: 'm-1', targets: [legacy] }]);
  });
});

describe('processRecords on offboarding', () => {
  const directory: UserDirectoryPort = {
    findById: async () => {
      throw new Error('an offboarding must never need IAM');
    },
    findByName: async () => undefined,
  };

  const offboarding = (n: number, extra: Record<string, unknown> = {}) => ({
    messageId: `msg-${n}`,
    groupId: userId(n),
    receiveCount: 1,
    body: JSON.stringify({
      type: 'user.offboarded',
      id: `ev-off-${n}`,
      occurredAt: '2026-11-21T08:59:00Z',
      user: { id: userId(n) },
      ...extra,
    }),
  });

  const runBatch = async (swr: FakeSwr, records = [offboarding(1)], store = createMemoryStore()) => {
    const telemetry = createMemoryTelemetry();
    const report = await processRecords(
      records,
      {
        swr,
        directory,
        store,
        policy,
        deadLetters: undefined,
        log: telemetry.log,
        metrics: telemetry.metrics,
        now: () => now,
      },
      { actor: 'offboard', concurrency: 2, dryRun: false },
      now.getTime() + 30_000,
    );
    return { report, telemetry };
  };

  it('removes the user from every repository and namespace of the managed namespaces, without IAM', async () => {
    // Prepare
    const swr = new ListingSwr()
      .hold('core/api/server', 1)
      .hold('core/legacy/tool', 1)
      .hold('core/legacy/tool', 2)
      .hold('tools', 1, 1);

    // Act
    const { report } = await runBatch(swr);

    // Assess
    expect(report.applied).toEqual(['msg-1']);
    expect(swr.holders('core/legacy/tool')).toEqual(['2']);
    expect(swr.holders('core/api/server')).toEqual([]);
    expect(swr.holders('tools')).toEqual([]);
    expect(report.proofs.map((proof) => proof.userId)).toEqual([userId(1)]);
  });

  it('revokes the known grants (the teams the store has) before it sweeps anything else', async () => {
    // Prepare: the store knows user 1 in platform (core/api/server).
    const store = createMemoryStore();
    await store.apply(
      { id: userId(1), name: 'user1' },
      [
        {
          id: 'join',
          type: 'membership.added',
          occurredAt: '2026-11-20T08:00:00Z',
          user: { id: userId(1), name: 'user1' },
          team: 'platform',
        },
      ],
      now,
    );
    const swr = new ListingSwr().hold('core/api/server', 1).hold('core/legacy/tool', 1).hold('tools', 1, 1);

    // Act
    await runBatch(swr, [offboarding(1)], store);

    // Assess
    const revokes = swr.calls.filter((call) => call.method === 'revoke').map((call) => call.target);
    expect(revokes[0]).toBe('core/api/server');
    expect(swr.reads[0]).toBe('core/api/server');
    expect(new Set(revokes)).toEqual(new Set(['core/api/server', 'core/legacy/tool', 'tools']));
  });

  it('reads every target once in a batch, besides the read-back of each target it revoked on', async () => {
    // Prepare
    const swr = new ListingSwr()
      .hold('core/api/server', 1)
      .hold('core/legacy/tool', 1)
      .hold('core/legacy/tool', 2)
      .hold('tools', 1, 1)
      .hold('tools/lint', 2);

    // Act
    const { report } = await runBatch(swr, [offboarding(1), offboarding(3)]);

    // Assess
    expect(report.applied).toEqual(['msg-1', 'msg-3']);
    const revoked = new Set(swr.calls.filter((call) => call.method === 'revoke').map((call) => call.target));
    expect(revoked).toEqual(new Set(['core/api/server', 'core/legacy/tool', 'tools']));
    const counts = new Map<string, number>();
    for (const key of swr.reads) counts.set(key, (counts.get(key) ?? 0) + 1);
    for (const [key, count] of counts) expect([key, count]).toEqual([key, revoked.has(key) ? 2 : 1]);
    expect([...counts.keys()].sort()).toEqual([
      'core',
      'core/api/server',
      'core/legacy/tool',
      'tools',
      'tools/lint',
    ]);
  });

  it('retries the message when a listing fails, after revoking what it could', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/legacy/tool', 1).hold('tools/lint', 1);
    swr.listFailures.set('tools', busy('tools'));

    // Act
    const { report } = await runBatch(swr);

    // Assess
    expect(report.applied).toEqual([]);
    expect(report.retried.map((failure) => [failure.messageId, failure.error.code])).toEqual([
      ['msg-1', 'SVCSTG.SWR.4090023'],
    ]);
    expect(report.response.batchItemFailures).toEqual([{ itemIdentifier: 'msg-1' }]);
    expect(swr.holders('core/legacy/tool')).toEqual([]);
    expect(swr.holders('tools/lint')).toEqual(['1']);
  });

  it('changes nothing for an offboarding effective in 15 days, for a user the store does not know', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/api/server', 1).hold('core/legacy/tool', 1);
    const later = new Date(now.getTime() + 15 * 24 * 60 * 60 * 1000).toISOString();

    // Act
    const { report, telemetry } = await runBatch(swr, [offboarding(1, { effectiveAt: later })]);

    // Assess
    expect(report.applied).toEqual(['msg-1']);
    expect(swr.calls).toEqual([]);
    expect(swr.holders('core/api/server')).toEqual(['1']);
    expect(telemetry.lines.some((line) => line.message === 'event deferred until it takes effect')).toBe(
      true,
    );
  });
});

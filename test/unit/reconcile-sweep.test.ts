import { describe, expect, it } from 'vitest';
import { plan } from '../../lib/core/planner.ts';
import type { CallOptions, Policy, UserDirectoryPort } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import { SyncError } from '../../lib/errors.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { processRecords } from '../../lib/pipeline.ts';
import { createSweeper } from '../../lib/reconcile/sweep.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { actualFactory, batchUserFactory, grant, target, userId } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';

const now = new Date('2026-11-21T09:00:00Z');

/** A FakeSwr that counts listings and can fail those of some namespaces. */
class ListingSwr extends FakeSwr {
  readonly listed: string[] = [];
  readonly listFailures = new Map<string, Error>();

  override async listRepositories(namespace: string, _options?: CallOptions): Promise<string[]> {
    this.listed.push(namespace);
    const failure = this.listFailures.get(namespace);
    if (failure !== undefined) throw failure;
    return super.listRepositories(namespace);
  }

  hold(key: string, n: number, auth: 1 | 3 | 7 = 3): this {
    const users = this.state.get(key) ?? new Map();
    users.set(userId(n), { user_id: userId(n), user_name: `user${n}`, auth });
    this.state.set(key, users);
    return this;
  }
}

const policy: Policy = {
  version: 1,
  sourcePath: 'test/policy.yaml',
  protectedUsers: [],
  managedNamespaces: ['core', 'tools'],
  teams: { platform: [grant('core/api/server', 'write')] },
};

const busy = () =>
  new SyncError('GET /v2/manage/repos failed: 409 system busy', {
    code: 'SVCSTG.SWR.4090023',
    retryable: true,
    target: 'tools',
  });

const keysOf = (targets: readonly { kind: string }[] | undefined) =>
  (targets ?? []).map((t) => `${t.kind}:${targetKey(t as Parameters<typeof targetKey>[0])}`).sort();

describe('createSweeper', () => {
  it('adds every repository and the namespace itself of each managed namespace to offboarded users only', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/api/server', 1).hold('core/legacy/tool', 1).hold('tools/lint', 2);
    const sweeper = createSweeper({ swr, policy, concurrency: 2 });
    const leaving = batchUserFactory({ id: 1, after: {}, offboardingInBatch: true });
    const staying = batchUserFactory({ id: 2, after: { platform: true } });

    // Act
    const { users, failures } = await sweeper.attach([leaving, staying]);

    // Assess
    expect(failures.size).toBe(0);
    expect(keysOf(users[0]?.extraTargets)).toEqual([
      'namespace:core',
      'namespace:tools',
      'repo:core/api/server',
      'repo:core/legacy/tool',
      'repo:tools/lint',
    ]);
    expect(users[1]).toBe(staying);
  });

  it('lists each namespace once per batch, however many users and rounds need it', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/legacy/tool', 1);
    const sweeper = createSweeper({ swr, policy, concurrency: 2 });
    const users = [1, 2, 3].map((id) => batchUserFactory({ id, after: {}, offboardingInBatch: true }));

    // Act
    const first = await sweeper.attach(users);
    const second = await sweeper.attach(first.users);

    // Assess
    expect(swr.listed.sort()).toEqual(['core', 'tools']);
    expect(second.users[0]?.extraTargets).toHaveLength(first.users[0]?.extraTargets?.length ?? -1);
  });

  it('never lists when nobody leaves', async () => {
    // Prepare
    const swr = new ListingSwr();
    const sweeper = createSweeper({ swr, policy, concurrency: 2 });

    // Act
    await sweeper.attach([batchUserFactory({ id: 2, after: { platform: true } })]);

    // Assess
    expect(swr.listed).toEqual([]);
  });

  it('reports a failed listing for every offboarded user and keeps what could be listed', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/legacy/tool', 1);
    swr.listFailures.set('tools', busy());
    const sweeper = createSweeper({ swr, policy, concurrency: 2 });

    // Act
    const { users, failures } = await sweeper.attach([
      batchUserFactory({ id: 1, after: {}, offboardingInBatch: true }),
    ]);

    // Assess
    expect(keysOf(users[0]?.extraTargets)).toEqual(['namespace:core', 'repo:core/legacy/tool']);
    const error = failures.get(userId(1));
    expect(error).toBeInstanceOf(SyncError);
    expect(error).toMatchObject({ code: 'SVCSTG.SWR.4090023', retryable: true, target: 'tools' });
    expect(error?.message).toMatch(/managed namespace tools could not be listed/);
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

describe('processRecords sweeps on offboarding', () => {
  const directory: UserDirectoryPort = {
    findById: async (id) => ({ id, name: `user${Number.parseInt(id, 16)}` }),
    findByName: async () => undefined,
  };

  const offboarding = (n: number) => ({
    messageId: `msg-${n}`,
    groupId: userId(n),
    receiveCount: 1,
    body: JSON.stringify({
      type: 'user.offboarded',
      id: `ev-off-${n}`,
      occurredAt: '2026-11-21T08:59:00Z',
      user: { id: userId(n) },
    }),
  });

  const runBatch = async (swr: FakeSwr) => {
    const telemetry = createMemoryTelemetry();
    const report = await processRecords(
      [offboarding(1)],
      {
        swr,
        directory,
        store: createMemoryStore(),
        policy,
        deadLetters: undefined,
        log: telemetry.log,
        metrics: telemetry.metrics,
        now: () => now,
      },
      { actor: 'offboard', concurrency: 2, dryRun: false },
      now.getTime() + 30_000,
    );
    return report;
  };

  it('removes the user from every repository and namespace of the managed namespaces', async () => {
    // Prepare
    const swr = new ListingSwr()
      .hold('core/api/server', 1)
      .hold('core/legacy/tool', 1)
      .hold('core/legacy/tool', 2)
      .hold('tools', 1, 1);

    // Act
    const report = await runBatch(swr);

    // Assess
    expect(report.applied).toEqual(['msg-1']);
    expect([...(swr.state.get('core/legacy/tool')?.keys() ?? [])]).toEqual([userId(2)]);
    expect(swr.state.get('core/api/server')?.size).toBe(0);
    expect(swr.state.get('tools')?.size).toBe(0);
  });

  it('retries the message when a listing fails, after revoking what it could', async () => {
    // Prepare
    const swr = new ListingSwr().hold('core/legacy/tool', 1).hold('tools/lint', 1);
    swr.listFailures.set('tools', busy());

    // Act
    const report = await runBatch(swr);

    // Assess
    expect(report.applied).toEqual([]);
    expect(report.retried.map((failure) => [failure.messageId, failure.error.code])).toEqual([
      ['msg-1', 'SVCSTG.SWR.4090023'],
    ]);
    expect(report.response.batchItemFailures).toEqual([{ itemIdentifier: 'msg-1' }]);
    expect(swr.state.get('core/legacy/tool')?.size).toBe(0);
    expect(swr.state.get('tools/lint')?.size).toBe(1);
  });
});

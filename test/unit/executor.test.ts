import { describe, expect, it } from 'vitest';
import { execute } from '../../lib/core/executor.ts';
import type { BatchUser } from '../../lib/core/planner.ts';
import { plan } from '../../lib/core/planner.ts';
import type { PermissionName, Plan } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import { ErrorCodes, SyncError } from '../../lib/errors.ts';
import { actualFactory, batchUserFactory, policyFactory, userId } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';

const now = new Date('2026-11-20T10:00:05Z');

/** Eight repositories for team `wide`, two for `pair`, one for `solo`. */
const wideRepos = Array.from({ length: 8 }, (_, i) => `core/repo${i}`);
const policy = policyFactory({
  teams: {
    wide: Object.fromEntries(wideRepos.map((repo) => [repo, 'read' as PermissionName])),
    pair: { 'data/one': 'write', 'data/two': 'write' },
    solo: { 'data/two': 'read', 'tools/lint': 'write' },
  },
});

const planFor = (users: BatchUser[], actual: Record<string, Record<number, PermissionName>>): Plan =>
  plan({ users, policy, actual: actualFactory(actual), now });

const emptyActual = (repos: string[]) => Object.fromEntries(repos.map((repo) => [repo, {}]));

const permanent = (target: string) =>
  new SyncError('forbidden', { code: 'SVCSTG.SWR.4030170', retryable: false, target });
const retryable = (target: string) =>
  new SyncError('system busy', { code: 'SVCSTG.SWR.4090023', retryable: true, target });

describe('execute: concurrency', () => {
  it.each([
    { concurrency: 1, expected: 1 },
    { concurrency: 3, expected: 3 },
    { concurrency: 8, expected: 8 },
    { concurrency: 50, expected: 8 },
    { concurrency: 0, expected: 1 },
  ])(
    'keeps at most $expected calls in flight with concurrency $concurrency',
    async ({ concurrency, expected }) => {
      // Prepare
      const swr = new FakeSwr();
      swr.delayMs = 15;
      const work = planFor([batchUserFactory({ id: 1, after: { wide: true } })], emptyActual(wideRepos));

      // Act
      const result = await execute(work, { swr }, { concurrency });

      // Assess
      expect(swr.calls).toHaveLength(8);
      expect(swr.maxInFlight).toBe(expected);
      expect(result.calls.map((call) => call.outcome)).toEqual(Array(8).fill('done'));
    },
  );

  it('runs calls for one target one after another, in plan order', async () => {
    // Prepare
    const swr = new FakeSwr();
    swr.delayMs = 10;
    const users = [
      batchUserFactory({ id: 1, after: { pair: true } }),
      batchUserFactory({ id: 2, before: { pair: true }, after: { pair: false } }),
      batchUserFactory({ id: 3, after: { solo: true } }),
    ];
    const work = planFor(users, {
      'data/one': { 2: 'write' },
      'data/two': { 2: 'write', 3: 'write' },
      'tools/lint': {},
    });

    // Act
    await execute(work, { swr }, { concurrency: 4 });

    // Assess
    expect(swr.maxInFlightPerTarget).toBe(1);
    expect(swr.calls.filter((call) => call.target === 'data/two').map((call) => call.method)).toEqual([
      'grant',
      'change',
      'revoke',
    ]);
    expect(swr.maxInFlight).toBeGreaterThan(1);
  });

  it('passes the deadline to every call and reports what was applied', async () => {
    // Prepare
    const swr = new FakeSwr();
    const work = planFor(
      [batchUserFactory({ id: 1, after: { pair: true } })],
      emptyActual(['data/one', 'data/two']),
    );
    const deadline = Date.now() + 60_000;

    // Act
    const result = await execute(work, { swr }, { concurrency: 2, deadline });

    // Assess
    expect(swr.calls.map((call) => call.options)).toEqual([{ deadline }, { deadline }]);
    expect(swr.state.get('data/one')?.get(userId(1))).toEqual({
      user_id: userId(1),
      user_name: 'user1',
      auth: 3,
    });
    expect(result.applied.map((change) => [targetKey(change.target), change.action, change.after])).toEqual([
      ['data/one', 'grant', 3],
      ['data/two', 'grant', 3],
    ]);
    expect(result.perMessage).toEqual(new Map([['m-1', { status: 'applied' }]]));
  });
});

/** How many planned user moves sit in calls on the failing targets. */
const lostChanges = (work: Plan, failures: Record<string, unknown>): number =>
  work.calls.filter((call) => targetKey(call.target) in failures).flatMap((call) => call.changes).length;

describe('execute: per-message outcome', () => {
  // User 1 needs data/one + data/two (pair), user 2 needs data/two + tools/lint (solo),
  // user 3 needs core/repo* (wide), user 4 joins a team that needs no call.
  const users = [
    batchUserFactory({ id: 1, after: { pair: true } }),
    batchUserFactory({ id: 2, after: { solo: true } }),
    batchUserFactory({ id: 3, after: { wide: true } }),
    batchUserFactory({ id: 4, after: { marketing: true } }),
  ];
  const actual = emptyActual([...wideRepos, 'data/one', 'data/two', 'tools/lint']);

  it.each([
    {
      name: 'nothing fails → every message applied',
      failures: {},
      expected: { 'm-1': 'applied', 'm-2': 'applied', 'm-3': 'applied', 'm-4': 'applied' },
    },
    {
      name: 'a permanent failure fails only the messages that depend on it',
      failures: { 'data/one': permanent('data/one') },
      expected: {
        'm-1': 'permanent:SVCSTG.SWR.4030170@data/one',
        'm-2': 'applied',
        'm-3': 'applied',
        'm-4': 'applied',
      },
    },
    {
      name: 'a shared call failing retryably fails both its messages retryably',
      failures: { 'data/two': retryable('data/two') },
      expected: {
        'm-1': 'retryable:SVCSTG.SWR.4090023@data/two',
        'm-2': 'retryable:SVCSTG.SWR.4090023@data/two',
        'm-3': 'applied',
        'm-4': 'applied',
      },
    },
    {
      name: 'permanent beats retryable for a message with both',
      failures: { 'data/one': retryable('data/one'), 'data/two': permanent('data/two') },
      expected: {
        'm-1': 'permanent:SVCSTG.SWR.4030170@data/two',
        'm-2': 'permanent:SVCSTG.SWR.4030170@data/two',
        'm-3': 'applied',
        'm-4': 'applied',
      },
    },
    {
      name: 'an unknown thrown value becomes a retryable crash naming the target',
      failures: { 'core/repo3': new TypeError('boom') },
      expected: {
        'm-1': 'applied',
        'm-2': 'applied',
        'm-3': 'retryable:HANDLER_CRASH@core/repo3',
        'm-4': 'applied',
      },
    },
    {
      name: 'a SyncError without a target is wrapped with the target, code kept',
      failures: {
        'tools/lint': new SyncError('not found', { code: 'SVCSTG.SWR.4040010', retryable: false }),
      },
      expected: {
        'm-1': 'applied',
        'm-2': 'permanent:SVCSTG.SWR.4040010@tools/lint',
        'm-3': 'applied',
        'm-4': 'applied',
      },
    },
  ])('$name', async ({ failures, expected }) => {
    // Prepare
    const swr = new FakeSwr();
    for (const [target, error] of Object.entries(failures)) swr.failTarget(target, error);
    const work = planFor(users, actual);

    // Act
    const result = await execute(work, { swr }, { concurrency: 3 });

    // Assess
    const summary = Object.fromEntries(
      [...result.perMessage].map(([id, r]) => [
        id,
        r.status === 'applied' ? 'applied' : `${r.status}:${r.error.code}@${r.error.target}`,
      ]),
    );
    expect(summary).toEqual(expected);
    const failed = result.calls
      .filter((call) => call.outcome === 'failed')
      .map((call) => targetKey(call.call.target));
    // A call SWR refused for one of its entries is split: a target may fail in several parts.
    expect([...new Set(failed)].sort()).toEqual(Object.keys(failures).sort());
    const appliedTargets = new Set(result.applied.map((change) => targetKey(change.target)));
    expect(Object.keys(failures).filter((target) => appliedTargets.has(target))).toEqual([]);
    expect(result.applied).toHaveLength(
      work.calls.flatMap((call) => call.changes).length - lostChanges(work, failures),
    );
  });

  it('keeps the cause and never puts the crash text in the message', async () => {
    // Prepare
    const crash = new Error('token=very-secret');
    const swr = new FakeSwr().failTarget('data/one', crash);
    const work = planFor([users[0] as BatchUser], actual);

    // Act
    const result = await execute(work, { swr }, { concurrency: 1 });

    // Assess
    const outcome = result.perMessage.get('m-1');
    expect(outcome?.status).toBe('retryable');
    const error = outcome?.status === 'retryable' ? outcome.error : undefined;
    expect(error?.cause).toBe(crash);
    expect(error?.message).not.toContain('very-secret');
  });

  it.each([
    { name: 'with the read error handed in', readError: retryable('data/one'), code: 'SVCSTG.SWR.4090023' },
    { name: 'without one', readError: undefined, code: ErrorCodes.network },
  ])('keeps a message blocked on an unread target retryable, $name', async ({ readError, code }) => {
    // Prepare
    const swr = new FakeSwr();
    const work = planFor(users.slice(0, 2), { 'data/two': {}, 'tools/lint': {} });
    const readErrors = readError === undefined ? undefined : new Map([['data/one', readError]]);

    // Act
    const result = await execute(work, { swr }, { concurrency: 2, readErrors });

    // Assess
    expect(work.skipped.map(targetKey)).toEqual(['data/one']);
    const blocked = result.perMessage.get('m-1');
    expect(blocked?.status === 'retryable' ? [blocked.error.code, blocked.error.target] : blocked).toEqual([
      code,
      'data/one',
    ]);
    expect(result.perMessage.get('m-2')).toEqual({ status: 'applied' });
    expect(swr.calls.map((call) => `${call.method} ${call.target}`)).toEqual([
      'grant data/two',
      'grant tools/lint',
    ]);
  });
});

describe('execute: deadline', () => {
  it('starts no call once the deadline has passed: their messages are retryable', async () => {
    // Prepare
    const swr = new FakeSwr();
    const work = planFor(
      [
        batchUserFactory({ id: 1, after: { pair: true } }),
        batchUserFactory({ id: 2, after: { marketing: true } }),
      ],
      emptyActual(['data/one', 'data/two']),
    );

    // Act
    const result = await execute(work, { swr, now: () => 1_000 }, { concurrency: 2, deadline: 1_000 });

    // Assess
    expect(swr.calls).toEqual([]);
    expect(result.calls.map((call) => [call.outcome, call.error?.code])).toEqual([
      ['failed', ErrorCodes.deadline],
      ['failed', ErrorCodes.deadline],
    ]);
    const first = result.perMessage.get('m-1');
    expect(first?.status === 'retryable' ? first.error.code : first).toBe(ErrorCodes.deadline);
    expect(result.perMessage.get('m-2')).toEqual({ status: 'applied' });
    expect(result.applied).toEqual([]);
  });

  it('stops starting calls when the deadline passes mid-way', async () => {
    // Prepare: every call moves the fake clock on by 10 ms.
    let clock = 0;
    const swr = new FakeSwr();
    swr.beforeWrite = () => {
      clock += 10;
    };
    const users = wideRepos.map((_, i) => batchUserFactory({ id: i + 1, after: { wide: true } }));
    const work = planFor(users, emptyActual(wideRepos));

    // Act
    const result = await execute(work, { swr, now: () => clock }, { concurrency: 1, deadline: 25 });

    // Assess
    expect(swr.calls).toHaveLength(3);
    expect(result.calls.map((call) => call.outcome)).toEqual([
      'done',
      'done',
      'done',
      ...Array(5).fill('failed'),
    ]);
    const statuses = new Set([...result.perMessage.values()].map((r) => r.status));
    // Every user is in every call, so every message depends on a call that never started.
    expect(statuses).toEqual(new Set(['retryable']));
    expect(result.applied).toHaveLength(3 * users.length);
  });
});

describe('execute: dry run', () => {
  it('makes no call, marks every call skipped and every message applied', async () => {
    // Prepare
    const swr = new FakeSwr().failTarget('data/one', permanent('data/one'));
    const work = planFor(
      [
        batchUserFactory({ id: 1, after: { pair: true } }),
        batchUserFactory({ id: 2, after: { solo: true } }),
      ],
      emptyActual(['data/one', 'data/two', 'tools/lint']),
    );

    // Act
    const result = await execute(work, { swr }, { concurrency: 2, dryRun: true, deadline: 0 });

    // Assess
    expect(swr.calls).toEqual([]);
    expect(result.calls.map((call) => call.outcome)).toEqual(
      Array(work.calls.length).fill('skipped-dry-run'),
    );
    expect(work.calls.length).toBeGreaterThan(0);
    expect(result.perMessage).toEqual(
      new Map([
        ['m-1', { status: 'applied' }],
        ['m-2', { status: 'applied' }],
      ]),
    );
    expect(result.applied).toEqual([]);
  });
});

/** A FakeSwr whose SWR refuses a whole POST (400 4001067) when it carries a user IAM does not know. */
class RefusingSwr extends FakeSwr {
  constructor(private readonly unknown: string) {
    super();
  }

  override async grant(...args: Parameters<FakeSwr['grant']>): Promise<void> {
    const [target, users] = args;
    if (users.some((user) => user.user_id === this.unknown)) {
      this.calls.push({ method: 'grant', target: targetKey(target), users, options: args[2] });
      throw new SyncError(`400 SVCSTG.SWR.4001067: unknown user ${this.unknown}`, {
        code: 'SVCSTG.SWR.4001067',
        retryable: false,
        target: targetKey(target),
      });
    }
    return super.grant(...args);
  }
}

describe('execute: a call SWR refuses because of one entry', () => {
  it('is split until the bad entry fails alone; every other user of the call is granted', async () => {
    // Prepare: five users join `pair`; SWR refuses user 3 on every POST that carries them.
    const users = [1, 2, 3, 4, 5].map((id) => batchUserFactory({ id, after: { pair: true } }));
    const work = planFor(users, emptyActual(['data/one', 'data/two']));
    const swr = new RefusingSwr(userId(3));

    // Act
    const result = await execute(work, { swr }, { concurrency: 2 });

    // Assess
    const statuses = Object.fromEntries([...result.perMessage].map(([id, r]) => [id, r.status]));
    expect(statuses).toEqual({
      'm-1': 'applied',
      'm-2': 'applied',
      'm-3': 'permanent',
      'm-4': 'applied',
      'm-5': 'applied',
    });
    for (const target of ['data/one', 'data/two'])
      expect([...(swr.state.get(target)?.keys() ?? [])].sort()).toEqual([1, 2, 4, 5].map(userId));
    // log2(5) rounded up: at most 4 calls per target carry the bad user.
    const refused = swr.calls.filter((call) =>
      (call.users as Array<{ user_id: string }>).some((u) => u.user_id === userId(3)),
    );
    expect(refused.length).toBeLessThanOrEqual(8);
    expect(result.perMessage.get('m-3')).toMatchObject({ error: { code: 'SVCSTG.SWR.4001067' } });
  });

  it('is not split for a failure of the target itself (a repository that does not exist)', async () => {
    // Prepare
    const users = [1, 2].map((id) => batchUserFactory({ id, after: { pair: true } }));
    const work = planFor(users, emptyActual(['data/one', 'data/two']));
    const swr = new FakeSwr().failTarget(
      'data/one',
      new SyncError('no such repository', {
        code: 'SVCSTG.SWR.4040010',
        retryable: false,
        target: 'data/one',
      }),
    );

    // Act
    const result = await execute(work, { swr }, { concurrency: 2 });

    // Assess
    expect(swr.calls.filter((call) => call.target === 'data/one')).toHaveLength(1);
    expect(result.perMessage.get('m-1')?.status).toBe('permanent');
  });
});

describe('execute: what a plan leaves out', () => {
  it('fails alone, permanently, a user the planner left out because SWR would refuse their name', async () => {
    // Prepare
    const bad = {
      ...batchUserFactory({ id: 9, after: { pair: true } }),
      userName: 'name with trailing space ',
    };
    const work = planFor(
      [batchUserFactory({ id: 1, after: { pair: true } }), bad],
      emptyActual(['data/one', 'data/two']),
    );

    // Act
    const result = await execute(work, { swr: new FakeSwr() }, { concurrency: 2 });

    // Assess
    expect(work.rejected.map((entry) => entry.userId)).toEqual([userId(9), userId(9)]);
    expect(result.perMessage.get('m-1')).toEqual({ status: 'applied' });
    expect(result.perMessage.get('m-9')).toMatchObject({
      status: 'permanent',
      error: { code: ErrorCodes.invalidName },
    });
  });

  it('counts a message that needed an unread target as failed in a dry run too', async () => {
    // Prepare: data/two could not be read.
    const work = planFor([batchUserFactory({ id: 1, after: { pair: true } })], emptyActual(['data/one']));

    // Act
    const result = await execute(work, { swr: new FakeSwr() }, { concurrency: 2, dryRun: true });

    // Assess
    expect(result.perMessage.get('m-1')).toMatchObject({ status: 'retryable' });
  });
});

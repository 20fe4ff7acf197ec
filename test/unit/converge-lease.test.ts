/**
 * Waiting for the converge lease (a clock and a sleep the test drives) and re-reading a batch's
 * users from the store once it is held (plain records): a moved user is planned from the newest
 * record without forgetting a target the batch's events left.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { converge } from '../../lib/converge/converge.ts';
import { waitForLease } from '../../lib/converge/lease.ts';
import { refreshUsers } from '../../lib/converge/refresh.ts';
import { knownTargets, plan } from '../../lib/core/planner.ts';
import type { LeasePort, Target, TargetAccess, UserRecord } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import { ErrorCodes, StoreError, SyncError } from '../../lib/errors.ts';
import { createMemoryLease } from '../../lib/store/lease.ts';
import {
  actualFactory,
  batchUserFactory,
  policyFactory,
  userId,
  userRecordFactory,
} from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';

/** A clock that only moves when the code under test sleeps. */
const fakeTime = (start = Date.now()) => {
  let now = start;
  const sleeps: number[] = [];
  return {
    now: () => now,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      now += ms;
    },
    sleeps,
  };
};

/** A lease port whose answers are scripted per attempt: true, false or an error. */
const scriptedLease = (answers: ReadonlyArray<boolean | Error>, at: () => number) => {
  const attemptsAt: number[] = [];
  const port: LeasePort = {
    ...createMemoryLease(),
    async tryAcquire() {
      attemptsAt.push(at());
      const answer = answers[Math.min(attemptsAt.length - 1, answers.length - 1)];
      if (answer instanceof Error) throw answer;
      return answer as boolean;
    },
    async release() {
      return true;
    },
  };
  return { port, attemptsAt };
};

describe('waitForLease', () => {
  it('takes a free lease at once, without waiting', async () => {
    // Prepare
    const time = fakeTime();
    const lease = createMemoryLease({ now: time.now });

    // Act
    const wait = await waitForLease(lease, 'x', 'sync', {
      deadline: time.now() + 10_000,
      expiresAt: time.now() + 13_000,
      now: time.now,
      sleep: time.sleep,
    });

    // Assess
    expect(wait).toMatchObject({ acquired: true, waitedMs: 0, attempts: 1 });
    expect(time.sleeps).toEqual([]);
  });

  it('polls with jittered pauses within the bounds until the holder lets go', async () => {
    // Prepare
    const time = fakeTime();
    const { port, attemptsAt } = scriptedLease([false, false, false, true], time.now);

    // Act
    const wait = await waitForLease(port, 'x', 'sync', {
      deadline: time.now() + 10_000,
      expiresAt: time.now() + 13_000,
      pollMs: [100, 250],
      now: time.now,
      sleep: time.sleep,
      random: (() => {
        const draws = [0, 0.5, 0.999];
        return () => draws.shift() ?? 0;
      })(),
    });

    // Assess
    expect(wait.acquired).toBe(true);
    expect(attemptsAt).toHaveLength(4);
    expect(time.sleeps).toEqual([100, 175, 250]);
    expect(wait.waitedMs).toBe(time.sleeps.reduce((a, b) => a + b, 0));
  });

  it('gives a distinct owner to every wait, so a later batch is another holder', async () => {
    // Prepare
    const time = fakeTime();
    const lease = createMemoryLease({ now: time.now });
    const options = {
      deadline: time.now() + 1_500,
      expiresAt: time.now() + 60_000,
      now: time.now,
      sleep: time.sleep,
    };

    // Act
    const first = await waitForLease(lease, 'x', 'sync', options);
    const second = await waitForLease(lease, 'x', 'sync', options);

    // Assess
    expect(first.acquired).toBe(true);
    expect(second.acquired).toBe(false);
  });

  it('never tries past the deadline less the time a converge needs (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 5_000 }),
        fc.integer({ min: 0, max: 2_000 }),
        fc.tuple(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 0, max: 300 })),
        async (budget, minRemainingMs, [low, spread]) => {
          // Prepare
          const time = fakeTime();
          const deadline = time.now() + budget;
          const { port, attemptsAt } = scriptedLease([false], time.now);

          // Act
          const wait = await waitForLease(port, 'x', 'sync', {
            deadline,
            expiresAt: deadline + 3_000,
            minRemainingMs,
            pollMs: [low, low + spread],
            now: time.now,
            sleep: time.sleep,
          });

          // Assess
          expect(wait.acquired).toBe(false);
          expect(attemptsAt.every((at) => at <= deadline - minRemainingMs)).toBe(true);
          if (budget >= minRemainingMs) expect(attemptsAt.length).toBeGreaterThan(0);
        },
      ),
      { seed: 20261130, numRuns: 200 },
    );
  });

  it('keeps trying through store errors and names the last one when the time runs out', async () => {
    // Prepare
    const time = fakeTime();
    const down = new StoreError('lease acquisition failed: ServiceUnavailable');
    const { port } = scriptedLease([down], time.now);

    // Act
    const wait = await waitForLease(port, 'converge:access-changes', 'sync', {
      deadline: time.now() + 2_000,
      expiresAt: time.now() + 5_000,
      now: time.now,
      sleep: time.sleep,
    });

    // Assess
    expect(wait.acquired).toBe(false);
    if (wait.acquired) return;
    expect(wait.attempts).toBeGreaterThan(1);
    expect(wait.error).toMatchObject({ code: ErrorCodes.leaseBusy, retryable: true, cause: down });
    expect(wait.error.message).toContain(ErrorCodes.store);
  });

  it('recovers from a store error on a later attempt', async () => {
    // Prepare
    const time = fakeTime();
    const { port } = scriptedLease([new StoreError('throttled'), true], time.now);

    // Act
    const wait = await waitForLease(port, 'x', 'sync', {
      deadline: time.now() + 5_000,
      expiresAt: time.now() + 8_000,
      now: time.now,
      sleep: time.sleep,
    });

    // Assess
    expect(wait).toMatchObject({ acquired: true, attempts: 2 });
  });
});

describe('refreshUsers', () => {
  const policy = policyFactory({
    teams: { data: { 'data/etl': 'write' }, tools: { tools: 'read' }, web: { 'apps/web': 'write' } },
  });
  const storeOf = (records: readonly UserRecord[], failing: readonly string[] = []) => ({
    get: async (id: string) => {
      if (failing.includes(id)) throw new StoreError(`read of ${id} failed`);
      return records.find((record) => record.userId === id);
    },
  });

  it('keeps a user whose record did not move as it was recorded', async () => {
    // Prepare
    const user = batchUserFactory({ id: 1, before: { data: true }, after: { data: true, tools: true } });

    // Act
    const result = await refreshUsers([user], storeOf([user.after]), policy, {
      concurrency: 2,
      deadline: Date.now() + 5_000,
    });

    // Assess
    expect(result.users).toEqual([user]);
    expect(result.moved).toBe(0);
  });

  it('plans a moved user from the newest record and still revokes what the batch left', async () => {
    // Prepare: the batch recorded a move from data to tools; another instance then recorded a
    // snapshot naming only web, and the data marker is gone from the newest record.
    const user = batchUserFactory({ id: 1, before: { data: true }, after: { data: false, tools: true } });
    const newest = userRecordFactory({ id: 1, teams: { web: true }, version: 5 });

    // Act
    const result = await refreshUsers([user], storeOf([newest]), policy, {
      concurrency: 2,
      deadline: Date.now() + 5_000,
    });
    const refreshed = result.users[0];
    const planned = plan({
      users: result.users,
      policy,
      actual: actualFactory({ 'data/etl': { 1: 'write' }, tools: { 1: 'read' }, 'apps/web': {} }),
      now: new Date(),
    });

    // Assess
    expect(result.moved).toBe(1);
    expect(refreshed?.after).toEqual(newest);
    expect(refreshed?.before).toEqual(user.after);
    expect(refreshed && [...knownTargets(refreshed, policy).keys()].sort()).toEqual([
      'apps/web',
      'data/etl',
      'tools',
    ]);
    expect(
      planned.calls
        .map((call) => `${call.action} ${call.changes.map((c) => c.target.namespace).join()}`)
        .sort(),
    ).toEqual(['grant apps', 'revoke data', 'revoke tools']);
  });

  it('leaves out a user whose record cannot be re-read, with the store error', async () => {
    // Prepare
    const kept = batchUserFactory({ id: 1, after: { data: true } });
    const unread = batchUserFactory({ id: 2, after: { tools: true } });

    // Act
    const result = await refreshUsers([kept, unread], storeOf([kept.after], [userId(2)]), policy, {
      concurrency: 2,
      deadline: Date.now() + 5_000,
    });

    // Assess
    expect(result.users).toEqual([kept]);
    expect(result.unread.get(userId(2))).toMatchObject({ code: ErrorCodes.store, retryable: true });
  });
});

describe('converge from reads made before the store was re-read', () => {
  const policy = policyFactory({ teams: { data: { 'data/etl': 'write' }, tools: { tools: 'read' } } });

  /** Counts reads per target; every read of `failing` fails. */
  class CountingSwr extends FakeSwr {
    readonly reads = new Map<string, number>();

    constructor(private readonly failing: string) {
      super();
    }

    override async getAccess(target: Target): Promise<TargetAccess> {
      const key = targetKey(target);
      this.reads.set(key, (this.reads.get(key) ?? 0) + 1);
      if (key === this.failing)
        throw new SyncError('read failed', { code: 'SVCSTG.SWR.5000090', retryable: true, target: key });
      return super.getAccess(target);
    }
  }

  it.each([
    { reread: false, readsOfFailing: 0 },
    { reread: true, readsOfFailing: 1 },
  ])(
    'reads a target whose earlier read failed $readsOfFailing more time(s) when rereadInitialFailures is $reread',
    async ({ reread, readsOfFailing }) => {
      // Prepare: the earlier read of data/etl failed; tools was read.
      const swr = new CountingSwr('data/etl');
      const user = batchUserFactory({ id: 1, after: { data: true, tools: true } });
      const initial = {
        actual: actualFactory({ tools: {} }),
        readErrors: new Map([
          ['data/etl', new SyncError('read failed', { code: 'SVCSTG.SWR.5000090', retryable: true })],
        ]),
      };

      // Act
      const result = await converge(
        [user],
        { swr, store: { get: async () => user.after }, policy, now: () => new Date() },
        {
          concurrency: 2,
          deadline: Date.now() + 10_000,
          dryRun: false,
          initial,
          rereadInitialFailures: reread,
        },
      );

      // Assess: never acted on the failed read; the message is retried either way.
      expect(swr.reads.get('data/etl') ?? 0).toBe(readsOfFailing);
      expect(result.plans[0]?.skipped.map(targetKey)).toEqual(['data/etl']);
      expect(result.failures.get('m-1')).toMatchObject({ retryable: true });
      expect(swr.calls.filter((call) => call.method === 'grant').map((call) => call.target)).toEqual([
        'tools',
      ]);
    },
  );
});

describe('waitForLease with no time left', () => {
  it('says so instead of blaming a holder, and never tries', async () => {
    // Prepare
    const time = fakeTime();
    const { port, attemptsAt } = scriptedLease([true], time.now);

    // Act
    const wait = await waitForLease(port, 'x', 'sync', {
      deadline: time.now() + 500,
      expiresAt: time.now() + 3_500,
      now: time.now,
      sleep: time.sleep,
    });

    // Assess
    expect(attemptsAt).toEqual([]);
    expect(wait.acquired).toBe(false);
    if (!wait.acquired) expect(wait.error.message).toMatch(/too little of the batch's time was left/);
  });
});

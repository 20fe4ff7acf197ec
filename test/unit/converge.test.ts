/**
 * The one converge routine (read → plan → execute → read back → re-check), with plain fakes: a
 * write SWR acknowledges but does not do, a store record that moves while the batch writes, a
 * read-back that fails.
 */
import { describe, expect, it } from 'vitest';
import { converge } from '../../lib/converge/converge.ts';
import type { Target, TargetAccess, UserAuth, UserRecord } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import { SyncError } from '../../lib/errors.ts';
import { batchUserFactory, policyFactory, userId, userRecordFactory } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';

const now = new Date();
const policy = policyFactory({ teams: { data: { 'data/etl/jobs': 'write' }, tools: { tools: 'read' } } });
const deadline = () => Date.now() + 30_000;

/** SWR that answers 2xx to the first `ghosts` grants without doing them. */
class GhostSwr extends FakeSwr {
  constructor(private ghosts: number) {
    super();
  }

  override async grant(target: Target, users: UserAuth[]): Promise<void> {
    if (this.ghosts > 0) {
      this.ghosts -= 1;
      this.calls.push({ method: 'grant', target: targetKey(target), users, options: undefined });
      return;
    }
    return super.grant(target, users);
  }
}

/** SWR whose reads of one target fail after the first `good` reads. */
class FlakyReadSwr extends FakeSwr {
  constructor(
    private readonly key: string,
    private good: number,
  ) {
    super();
  }

  override async getAccess(target: Target): Promise<TargetAccess> {
    if (targetKey(target) === this.key) {
      if (this.good <= 0)
        throw new SyncError('read timed out', { code: 'TIMEOUT', retryable: true, target: this.key });
      this.good -= 1;
    }
    return super.getAccess(target);
  }
}

const storeOf = (records: Map<string, UserRecord>) => ({ get: async (id: string) => records.get(id) });

describe('converge', () => {
  it('writes again a grant SWR acknowledged but did not do, and applies the message once SWR shows it', async () => {
    // Prepare
    const swr = new GhostSwr(1);
    const user = batchUserFactory({ id: 1, after: { data: true } });

    // Act
    const result = await converge(
      [user],
      { swr, store: storeOf(new Map()), policy, now: () => now },
      { concurrency: 2, deadline: deadline(), dryRun: false },
    );

    // Assess
    expect(swr.calls.filter((call) => call.method === 'grant')).toHaveLength(2);
    expect(result.failures.size).toBe(0);
    expect(swr.state.get('data/etl/jobs')?.get(userId(1))?.auth).toBe(3);
  });

  it('fails the message, retryably and with the reason, when SWR never shows the write', async () => {
    // Prepare
    const swr = new GhostSwr(100);
    const user = batchUserFactory({ id: 1, after: { data: true } });

    // Act
    const result = await converge(
      [user],
      { swr, store: storeOf(new Map()), policy, now: () => now },
      { concurrency: 2, deadline: deadline(), dryRun: false, maxReplans: 2 },
    );

    // Assess
    expect(result.failures.get('m-1')).toMatchObject({
      code: 'WRITE_NOT_EFFECTIVE',
      retryable: true,
      target: 'data/etl/jobs',
    });
    expect(swr.calls.filter((call) => call.method === 'grant')).toHaveLength(3);
  });

  it('never counts a write as applied when its read-back fails', async () => {
    // Prepare: the target reads once (before the write), then every read fails.
    const swr = new FlakyReadSwr('data/etl/jobs', 1);
    const user = batchUserFactory({ id: 1, after: { data: true } });

    // Act
    const result = await converge(
      [user],
      { swr, store: storeOf(new Map()), policy, now: () => now },
      { concurrency: 2, deadline: deadline(), dryRun: false },
    );

    // Assess
    expect(result.failures.get('m-1')).toMatchObject({ retryable: true });
    expect(result.failures.get('m-1')?.code).toMatch(/WRITE_UNVERIFIED|TIMEOUT/);
  });

  it('plans a user again from the newer record when the store moved while it wrote (revokes too)', async () => {
    // Prepare: the batch grants data; meanwhile an offboarding landed in the store.
    const swr = new FakeSwr();
    const user = batchUserFactory({ id: 1, after: { data: true } });
    const moved = userRecordFactory({
      id: 1,
      teams: { data: false },
      offboardedAt: now.toISOString(),
      version: 3,
    });

    // Act
    const result = await converge(
      [user],
      { swr, store: storeOf(new Map([[userId(1), moved]])), policy, now: () => now },
      { concurrency: 2, deadline: deadline(), dryRun: false },
    );

    // Assess
    expect(result.replanned).toBe(1);
    expect(swr.state.get('data/etl/jobs')?.has(userId(1))).toBe(false);
    expect(swr.calls.map((call) => call.method)).toEqual(['grant', 'revoke']);
  });

  it('does nothing past the deadline, and says the messages must be retried', async () => {
    // Act
    const result = await converge(
      [batchUserFactory({ id: 1, after: { data: true } })],
      { swr: new FakeSwr(), store: storeOf(new Map()), policy, now: () => now },
      { concurrency: 2, deadline: now.getTime() - 1, dryRun: false },
    );

    // Assess
    expect(result.failures.get('m-1')).toMatchObject({ code: 'DEADLINE_EXCEEDED', retryable: true });
    expect(result.calls).toEqual([]);
  });

  it('lets the guard refuse the first plan: nothing is written', async () => {
    // Prepare
    const swr = new FakeSwr();

    // Act
    const result = await converge(
      [batchUserFactory({ id: 1, after: { data: true } })],
      { swr, store: storeOf(new Map()), policy, now: () => now },
      { concurrency: 2, deadline: deadline(), dryRun: false, approve: () => false },
    );

    // Assess
    expect(result.refused).toBe(true);
    expect(swr.calls).toEqual([]);
    expect(result.plans[0]?.calls.length).toBe(1);
  });
});

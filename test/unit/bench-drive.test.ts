import { describe, expect, it } from 'vitest';
import { DeliveryQueue, deployedShapes } from '../../bench/drive.ts';
import { createCallLedger, totalsOf } from '../../bench/ledger.ts';
import { instancesAtOnce, perInstanceRate } from '../../bench/scenarios/quota.ts';
import queuesConfig from '../../config/queues.json' with { type: 'json' };
import type { Target } from '../../lib/domain.ts';
import { ErrorCodes, SyncError } from '../../lib/errors.ts';
import { createMemorySweepProgress } from '../../lib/offboarding/progress.ts';
import type { PipelineRecord } from '../../lib/pipeline.ts';
import { FakeSwr } from '../support/fake-swr.ts';

const record = (n: number, group: string): PipelineRecord => ({
  messageId: `m${n}`,
  body: '{}',
  groupId: group,
  receiveCount: 1,
});

const ids = (records: readonly PipelineRecord[]): string[] => records.map((r) => r.messageId);

const repo = (name: string): Target => ({ kind: 'repo', namespace: 'core', repository: name });

describe('DeliveryQueue', () => {
  it('hands a standard queue out in batches of the next messages, whatever their group, and puts a failure at the back', () => {
    // Prepare
    const queue = new DeliveryQueue([record(1, 'a'), record(2, 'a'), record(3, 'b'), record(4, 'c')], false);

    // Act
    const first = queue.take(2);
    const second = queue.take(2);
    queue.settle(first, [first[1] as PipelineRecord]);
    const third = queue.take(10);

    // Assess
    expect(ids(first)).toEqual(['m1', 'm2']);
    expect(ids(second)).toEqual(['m3', 'm4']);
    expect(ids(third)).toEqual(['m2']);
    expect(queue.waiting).toBe(0);
  });

  it('never hands out a FIFO group another batch holds, nor a later message past an earlier one left behind', () => {
    // Prepare
    const queue = new DeliveryQueue(
      [record(1, 'a'), record(2, 'b'), record(3, 'a'), record(4, 'c'), record(5, 'b')],
      true,
    );

    // Act
    const first = queue.take(1);
    const second = queue.take(10);
    const blocked = queue.take(10);
    queue.settle(first, [first[0] as PipelineRecord]);
    const third = queue.take(10);

    // Assess: a is held by the first batch, so m3 waits, and m5 (b) follows m2 (b) in order.
    expect(ids(first)).toEqual(['m1']);
    expect(ids(second)).toEqual(['m2', 'm4', 'm5']);
    expect(blocked).toEqual([]);
    expect(ids(third)).toEqual(['m1', 'm3']);
  });
});

describe('deployedShapes', () => {
  it('follows config/queues.json for each queue', () => {
    // Act
    const shapes = deployedShapes();

    // Assess
    for (const name of ['accessChanges', 'offboarding', 'offboardingSweeps'] as const) {
      const queue = queuesConfig.queues[name];
      expect(shapes[name]).toEqual({
        fifo: queue.fifo,
        batchSize: queue.batchSize,
        instances: queue.maximumConcurrency,
        maxReceiveCount: queue.maxReceiveCount,
        windowMs: queue.maximumBatchingWindowSeconds * 1000,
      });
    }
  });
});

describe('createCallLedger', () => {
  it('tells reads from read-backs per instance, and apply from sweep by the first cursor read', async () => {
    // Prepare
    const ledger = createCallLedger();
    const one = ledger.tap(new FakeSwr(), createMemorySweepProgress());
    const two = ledger.tap(new FakeSwr(), createMemorySweepProgress());
    one.beginBatch();
    two.beginBatch();

    // Act
    await one.swr.getAccess(repo('a'));
    await one.swr.revoke(repo('a'), ['u1']);
    await one.swr.grant(repo('a'), [{ user_id: 'u2', user_name: 'two', auth: 1 }]);
    await two.swr.getAccess(repo('a'));
    await one.swr.getAccess(repo('a'));
    await one.swr.getAccess(repo('a'));
    await one.sweepProgress.get('u1');
    await one.swr.listRepositories('core');
    await one.swr.getAccess(repo('b'));
    one.beginBatch();
    await one.swr.getAccess(repo('c'));

    // Assess
    const counts = ledger.counts();
    expect(counts.apply).toEqual({ read: 4, readBack: 1, post: 1, patch: 0, delete: 1, list: 0, cut: 0 });
    expect(counts.sweep).toEqual({ read: 1, readBack: 0, post: 0, patch: 0, delete: 0, list: 1, cut: 0 });
    expect(totalsOf(counts)).toEqual({ reads: 5, readBacks: 1, writes: 2, lists: 1, calls: 9 });
  });

  it('counts a call that ended in DEADLINE_EXCEEDED as cut, and a failed write as a call without a read-back', async () => {
    // Prepare
    const swr = new FakeSwr();
    const ledger = createCallLedger();
    const tap = ledger.tap(swr, createMemorySweepProgress());
    tap.beginBatch();
    swr.failTarget(
      'core/a',
      new SyncError('rate limit slot past the deadline', { code: ErrorCodes.deadline, retryable: true }),
    );
    swr.failTarget('core/b', new SyncError('busy', { code: 'SVCSTG.SWR.4090023', retryable: true }));

    // Act
    await expect(tap.swr.revoke(repo('a'), ['u1'])).rejects.toThrow(SyncError);
    await expect(tap.swr.revoke(repo('b'), ['u1'])).rejects.toThrow(SyncError);
    await tap.swr.getAccess(repo('b'));

    // Assess
    expect(ledger.counts().apply).toMatchObject({ delete: 1, cut: 1, read: 1, readBack: 0 });
  });
});

describe('quota split', () => {
  it('gives every instance that may run at once the same share, at or under the quota', () => {
    // Prepare
    const instances = instancesAtOnce();

    // Act
    const rates = [20, 200, 3].map((quota) => [quota, perInstanceRate(quota)] as const);

    // Assess
    // The offboard function's two event sources each run up to their maximumConcurrency.
    expect(instances).toBe(
      queuesConfig.queues.accessChanges.maximumConcurrency +
        queuesConfig.queues.offboarding.maximumConcurrency +
        queuesConfig.queues.offboardingSweeps.maximumConcurrency +
        1,
    );
    for (const [quota, rate] of rates) expect(rate * instances <= quota || rate === 1).toBe(true);
    expect(perInstanceRate(200)).toBe(Math.floor(200 / instances));
  });
});

/**
 * The converge lease's adapters, DynamoDB (dynalite) and memory, against one contract: one holder
 * at a time, an expired lease is free, only its owner releases it, a deadline already passed is
 * refused; the users announced by waiting batches stay until a holder forgets them. The waiting loop over the DynamoDB adapter never tries past the deadline.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForLease } from '../../lib/converge/lease.ts';
import type { LeasePort } from '../../lib/domain.ts';
import { ErrorCodes, StoreError } from '../../lib/errors.ts';
import { type LocalDynamo, startLocalDynamo } from '../../lib/local/dynamo.ts';
import { createDynamoStore, ensureTable } from '../../lib/store/index.ts';
import {
  createDynamoLease,
  createMemoryLease,
  leasePartitionKey,
  leaseSortKey,
  maxAnnouncedUsers,
} from '../../lib/store/lease.ts';

const tableName = 'lease-contract';
let dynamo: LocalDynamo;

beforeAll(async () => {
  dynamo = await startLocalDynamo();
  await ensureTable(dynamo.client, tableName);
});

afterAll(async () => {
  await dynamo?.stop();
});

/** A clock the test moves; both adapters compare expiries on the caller's clock. */
const clockAt = (start: number) => {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
};

let leaseCounter = 0;
/** A fresh lease name per test: the table is shared. */
const freshName = (): string => `converge:test-${++leaseCounter}`;

const adapters: Array<[string, (now: () => number) => LeasePort]> = [
  ['dynamo', (now) => createDynamoLease({ client: dynamo.client, tableName, now })],
  ['memory', (now) => createMemoryLease({ now })],
];

describe.each(adapters)('%s lease', (_kind, make) => {
  it('gives the lease to one owner at a time', async () => {
    // Prepare
    const clock = clockAt(1_000_000);
    const lease = make(clock.now);
    const name = freshName();

    // Act
    const first = await lease.tryAcquire(name, 'a', clock.now() + 5_000);
    const second = await lease.tryAcquire(name, 'b', clock.now() + 5_000);
    const again = await lease.tryAcquire(name, 'a', clock.now() + 6_000);

    // Assess
    expect(first).toBe(true);
    expect(second).toBe(false);
    // The owner's own retry (a put that landed but whose answer was lost) must not lock it out.
    expect(again).toBe(true);
  });

  it('frees a lease whose holder never released it once it expires', async () => {
    // Prepare: "a" crashed while holding it.
    const clock = clockAt(2_000_000);
    const lease = make(clock.now);
    const name = freshName();
    await lease.tryAcquire(name, 'a', clock.now() + 3_000);

    // Act
    clock.advance(2_999);
    const before = await lease.tryAcquire(name, 'b', clock.now() + 3_000);
    clock.advance(1);
    const at = await lease.tryAcquire(name, 'b', clock.now() + 3_000);
    const late = await lease.tryAcquire(name, 'a', clock.now() + 3_000);

    // Assess
    expect(before).toBe(false);
    expect(at).toBe(true);
    expect(late).toBe(false);
  });

  it('is released only by its owner', async () => {
    // Prepare
    const clock = clockAt(3_000_000);
    const lease = make(clock.now);
    const name = freshName();
    await lease.tryAcquire(name, 'a', clock.now() + 60_000);

    // Act
    const byOther = await lease.release(name, 'b');
    const stillHeld = await lease.tryAcquire(name, 'c', clock.now() + 60_000);
    const byOwner = await lease.release(name, 'a');
    const freed = await lease.tryAcquire(name, 'c', clock.now() + 60_000);
    const releasedAgain = await lease.release(name, 'a');

    // Assess
    expect(byOther).toBe(false);
    expect(stillHeld).toBe(false);
    expect(byOwner).toBe(true);
    expect(freed).toBe(true);
    // "a" no longer holds it: its late release leaves "c" alone.
    expect(releasedAgain).toBe(false);
    expect(await lease.tryAcquire(name, 'd', clock.now() + 60_000)).toBe(false);
  });

  it('keeps the users waiting batches announce, through acquisitions, until a holder forgets them', async () => {
    // Prepare
    const clock = clockAt(4_000_000);
    const lease = make(clock.now);
    const name = freshName();
    await lease.tryAcquire(name, 'a', clock.now() + 60_000);

    // Act
    await lease.announce(name, ['u2', 'u1']);
    await lease.announce(name, ['u3', 'u2']);
    await lease.announce(name, []);
    await lease.release(name, 'a');
    await lease.tryAcquire(name, 'b', clock.now() + 60_000);
    const seen = await lease.announced(name);
    await lease.forget(name, ['u1', 'u2', 'u9']);
    const left = await lease.announced(name);

    // Assess
    expect(seen).toEqual(['u1', 'u2', 'u3']);
    expect(left).toEqual(['u3']);
    expect(await lease.announced(freshName())).toEqual([]);
  });

  it('can be acquired after users were announced on a lease nobody held yet', async () => {
    // Prepare: the first batch of a fresh table announces before anyone ever acquired.
    const clock = clockAt(5_000_000);
    const lease = make(clock.now);
    const name = freshName();
    await lease.announce(name, ['u1']);

    // Act
    const acquired = await lease.tryAcquire(name, 'a', clock.now() + 5_000);
    const contended = await lease.tryAcquire(name, 'b', clock.now() + 5_000);

    // Assess
    expect(acquired).toBe(true);
    expect(contended).toBe(false);
    expect(await lease.announced(name)).toEqual(['u1']);
  });

  it('stops adding announced users at the cap', async () => {
    // Prepare
    const lease = make(Date.now);
    const name = freshName();
    const many = Array.from({ length: maxAnnouncedUsers }, (_, i) => `user-${String(i).padStart(5, '0')}`);
    await lease.announce(name, many);

    // Act
    await lease.announce(name, ['one-too-many']);

    // Assess
    const announced = await lease.announced(name);
    expect(announced).toHaveLength(maxAnnouncedUsers);
    expect(announced).not.toContain('one-too-many');
  });

  it('refuses to start an attempt once the deadline has passed', async () => {
    // Prepare
    const lease = make(Date.now);
    const name = freshName();

    // Act
    const attempt = lease.tryAcquire(name, 'a', Date.now() + 5_000, { deadline: Date.now() - 1 });

    // Assess
    await expect(attempt).rejects.toMatchObject({ code: ErrorCodes.deadline, retryable: true });
    await expect(attempt).rejects.toBeInstanceOf(StoreError);
    expect(await lease.tryAcquire(name, 'b', Date.now() + 5_000)).toBe(true);
  });
});

describe('dynamo lease item', () => {
  it('lives beside the users without being listed as one', async () => {
    // Prepare
    const lease = createDynamoLease({ client: dynamo.client, tableName });
    const store = createDynamoStore({ client: dynamo.client, tableName });
    const name = freshName();
    const expiresAt = Date.now() + 10_000;
    await store.apply({ id: 'a'.repeat(32), name: 'ana' }, [
      {
        id: 'e-1',
        type: 'membership.added',
        occurredAt: '2026-11-20T10:00:00Z',
        user: { id: 'a'.repeat(32), name: 'ana' },
        team: 'platform',
      },
    ]);

    // Act
    await lease.tryAcquire(name, 'holder-1', expiresAt);
    const listed = [];
    for await (const record of store.list()) listed.push(record.userId);
    const { Item } = await dynamo.client.send(
      new GetCommand({ TableName: tableName, Key: { pk: leasePartitionKey(name), sk: leaseSortKey } }),
    );

    // Assess
    expect(listed).toEqual(['a'.repeat(32)]);
    expect(Item).toMatchObject({ owner: 'holder-1', expiresAt });
  });
});

describe('waitForLease over DynamoDB', () => {
  it('waits for the holder to release, then holds it', async () => {
    // Prepare
    const lease = createDynamoLease({ client: dynamo.client, tableName });
    const name = freshName();
    await lease.tryAcquire(name, 'other', Date.now() + 30_000);
    const deadline = Date.now() + 20_000;

    // Act
    const waiting = waitForLease(lease, name, 'sync', { deadline, expiresAt: deadline + 3_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await lease.release(name, 'other');
    const wait = await waiting;

    // Assess
    expect(wait.acquired).toBe(true);
    expect(wait.attempts).toBeGreaterThan(1);
    if (wait.acquired) expect(await lease.release(name, wait.owner)).toBe(true);
  });

  it('gives up before the deadline, leaving time to answer, with a retryable typed error', async () => {
    // Prepare: the holder keeps it well past this batch's deadline.
    const lease = createDynamoLease({ client: dynamo.client, tableName });
    const name = freshName();
    await lease.tryAcquire(name, 'other', Date.now() + 60_000);
    const attemptsAt: number[] = [];
    const counting: LeasePort = {
      ...lease,
      tryAcquire: (...args) => {
        attemptsAt.push(Date.now());
        return lease.tryAcquire(...args);
      },
    };
    const deadline = Date.now() + 1_500;

    // Act
    const wait = await waitForLease(counting, name, 'sync', {
      deadline,
      expiresAt: deadline + 3_000,
      minRemainingMs: 500,
    });

    // Assess
    expect(wait.acquired).toBe(false);
    if (!wait.acquired) expect(wait.error).toMatchObject({ code: ErrorCodes.leaseBusy, retryable: true });
    expect(attemptsAt.length).toBeGreaterThan(1);
    expect(attemptsAt.every((at) => at <= deadline - 500)).toBe(true);
  });
});

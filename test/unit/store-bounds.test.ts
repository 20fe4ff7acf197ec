import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { currentTeams } from '../../lib/core/desired.ts';
import { applyEvent, maxPendingBytes, PendingLimitError } from '../../lib/core/membership.ts';
import type { ResolvedEvent, TeamFact, UserRecord } from '../../lib/domain.ts';
import { ErrorCodes, StoreError } from '../../lib/errors.ts';
import { fitRecord, maxRecordItemBytes, recordItemBytes } from '../../lib/store/bounds.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { toItem } from '../../lib/store/item.ts';
import { dynamoItemLimitBytes, dynamoItemSize } from '../../lib/store/item-size.ts';
import { reduceEvents } from '../../lib/store/reduce.ts';
import { userId } from '../support/factories.ts';

// dynalite's own item-size rules (what it checks its 400 KB limit with): an independent reading
// of the same AWS documentation. It counts strings in UTF-16 units, so it is compared on ASCII.
const dynaliteDb = createRequire(import.meta.url)('dynalite/db/index.js') as {
  itemSize(item: Record<string, unknown>): number;
  MAX_SIZE: number;
};

/** The wire form (AttributeValue) of a plain value, as the DynamoDB document client sends it. */
const marshal = (value: unknown): Record<string, unknown> => {
  if (typeof value === 'string') return { S: value };
  if (typeof value === 'number') return { N: String(value) };
  if (typeof value === 'boolean') return { BOOL: value };
  if (Array.isArray(value)) return { L: value.map(marshal) };
  return {
    M: Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, marshal(v)]),
    ),
  };
};
const marshalItem = (item: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(item).map(([k, v]) => [k, marshal(v)]));

const user = { id: userId(9), name: 'user9' };
const H = (hour: number): string => new Date(Date.UTC(2026, 10, 20, hour)).toISOString();
const marker = (hour: number, eventId = `left-${hour}`): TeamFact => ({
  member: false,
  at: H(hour),
  eventId,
});
const member = (hour: number, eventId = `join-${hour}`): TeamFact => ({ member: true, at: H(hour), eventId });
const recordOf = (teams: Record<string, TeamFact>, extra: Partial<UserRecord> = {}): UserRecord => ({
  userId: user.id,
  userName: user.name,
  teams,
  version: 3,
  ...extra,
});
/** `count` teams named `<prefix>-<n>` padded to `width` characters. */
const manyTeams = (count: number, prefix: string, fact: (n: number) => TeamFact, width = 40) =>
  Object.fromEntries(
    Array.from({ length: count }, (_, n) => [
      `${prefix}-${String(n).padStart(width - prefix.length - 1, '0')}`,
      fact(n),
    ]),
  );

describe('item size as DynamoDB counts it', () => {
  it('agrees with dynalite on the limit and on any ASCII record, numbers rounded up', () => {
    // Prepare
    const ascii = fc.string({
      unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_:'),
      maxLength: 40,
    });
    const fact = fc.record({ member: fc.boolean(), at: ascii, eventId: ascii });
    const record = fc.record({
      userId: ascii,
      userName: ascii,
      teams: fc.dictionary(ascii, fact, { maxKeys: 20 }),
      version: fc.nat(),
    });

    // Assess
    expect(dynamoItemLimitBytes).toBe(dynaliteDb.MAX_SIZE);
    fc.assert(
      fc.property(record, (generated) => {
        const item = toItem(generated);
        const ours = dynamoItemSize(item);
        const theirs = dynaliteDb.itemSize(marshalItem(item));
        // One number (version): we count one byte more than the documented approximation.
        expect(ours - theirs).toBeGreaterThanOrEqual(0);
        expect(ours - theirs).toBeLessThanOrEqual(2);
      }),
      { seed: 20261122, numRuns: 300 },
    );
  });

  it('counts strings in UTF-8 bytes', () => {
    // Act
    const size = dynamoItemSize({ pk: 'ü', team: 'チーム', emoji: '🙂' });

    // Assess
    expect(size).toBe(2 + 2 + 4 + 9 + 5 + 4);
  });
});

describe('fitting a record into one item', () => {
  it('always drops the markers the tombstone decides, and reports nothing under the budget', () => {
    // Prepare
    const record = recordOf({ a: marker(5), b: marker(10), c: member(11) }, { offboardedAt: H(10) });

    // Act
    const { record: fitted, fit } = fitRecord(record, { before: undefined });

    // Assess
    expect(Object.keys(fitted.teams)).toEqual(['c']);
    expect(fit).toBeUndefined();
  });

  it('keeps left-team markers of a record under the budget, even below the snapshot watermark', () => {
    // Prepare: a retry after a crash re-checks the targets of the teams a snapshot removed
    const record = recordOf({ a: marker(5), b: member(5) }, { snapshotAt: H(5) });

    // Act
    const { record: fitted } = fitRecord(record, { before: undefined });

    // Assess
    expect(fitted).toBe(record);
  });

  it('over the budget, first drops what the watermarks decide, losing nothing', () => {
    // Prepare
    const left = manyTeams(30, 'left', () => marker(5, 'snapshot'));
    const record = recordOf({ ...left, kept: member(5, 'snapshot'), later: marker(7) }, { snapshotAt: H(5) });
    const budget = recordItemBytes(
      recordOf({ kept: member(5, 'snapshot'), later: marker(7) }, { snapshotAt: H(5) }),
    );

    // Act
    const { record: fitted, fit } = fitRecord(record, { before: undefined, budget });

    // Assess
    expect(Object.keys(fitted.teams).sort()).toEqual(['kept', 'later']);
    expect(fitted.floorAt).toBeUndefined();
    expect(fit?.compactedTeams).toHaveLength(30);
    expect(fit?.prunedTeams).toEqual([]);
    expect(fit?.bytes).toBeLessThanOrEqual(budget);
  });

  it('then prunes the oldest markers and raises floorAt: older late joins are stale, newer ones apply', () => {
    // Prepare: markers from removals at hours 1..8, no watermark makes them redundant
    const markers = Object.fromEntries(Array.from({ length: 8 }, (_, n) => [`team-${n + 1}`, marker(n + 1)]));
    const record = recordOf({ ...markers, stays: member(0) });
    const budget = recordItemBytes(record) - 150;

    // Act
    const { record: fitted, fit } = fitRecord(record, { before: undefined, budget });

    // Assess
    expect(recordItemBytes(fitted)).toBeLessThanOrEqual(budget);
    const pruned = fit?.prunedTeams ?? [];
    expect(pruned.length).toBeGreaterThan(0);
    expect(pruned).toEqual(Object.keys(markers).slice(0, pruned.length));
    expect(fitted.floorAt).toBe(H(pruned.length));
    expect(fitted.teams.stays).toEqual(member(0));
    const now = new Date(H(20));
    const lateJoin = (team: string, hour: number): ResolvedEvent => ({
      id: `late-${team}-${hour}`,
      type: 'membership.added',
      occurredAt: H(hour),
      user,
      team,
    });
    expect(applyEvent(fitted, lateJoin('team-1', pruned.length), now).outcome.status).toBe('stale');
    expect(applyEvent(fitted, lateJoin('never-seen', 1), now).outcome.status).toBe('stale');
    expect(applyEvent(fitted, lateJoin('team-1', pruned.length + 1), now).outcome.status).toBe('applied');
  });

  it('refuses a growing record that cannot fit with a permanent STORE_ITEM_TOO_LARGE naming the user', () => {
    // Prepare
    const record = recordOf(manyTeams(40, 'member', (n) => member(n % 10)));
    const budget = recordItemBytes(recordOf(manyTeams(20, 'member', (n) => member(n % 10))));

    // Act
    const fitting = () => fitRecord(record, { before: recordOf({}), budget });

    // Assess
    expect(fitting).toThrow(StoreError);
    expect(fitting).toThrow(
      expect.objectContaining({ code: ErrorCodes.storeItemTooLarge, retryable: false }),
    );
    expect(fitting).toThrow(new RegExp(`user ${user.id} would be \\d+ bytes.*40 current memberships`));
  });

  it('lets through a write that does not grow an oversized record (a removal is always recordable)', () => {
    // Prepare
    const stored = recordOf(manyTeams(40, 'member', (n) => member(n % 10)));
    const budget = recordItemBytes(stored) - 500;
    const removal: ResolvedEvent = {
      id: 'leave',
      type: 'membership.removed',
      occurredAt: H(12),
      user,
      team: Object.keys(stored.teams)[0] as string,
    };

    // Act
    const result = reduceEvents(stored, user, [removal], new Date(H(13)), { budget });

    // Assess
    expect(result.outcomes.map((o) => o.status)).toEqual(['applied']);
    expect(currentTeams(result.after)).toHaveLength(39);
  });
});

describe('the store reports what fitting cost', () => {
  it('warns with counts, the first names and the new floor when markers were pruned', async () => {
    // Prepare
    const warnings: Array<{ message: string; attributes?: Record<string, unknown> }> = [];
    const log = {
      info: () => undefined,
      warn: (message: string, attributes?: Record<string, unknown>) =>
        warnings.push({ message, ...(attributes === undefined ? {} : { attributes }) }),
    };
    const markers = manyTeams(60, 'gone', (n) => marker(1 + (n % 8)));
    const stored = recordOf(markers);
    const store = createMemoryStore({ initial: [stored], log, itemBudget: recordItemBytes(stored) - 2_000 });
    const join: ResolvedEvent = { id: 'j', type: 'membership.added', occurredAt: H(12), user, team: 'new' };

    // Act
    const result = await store.apply(user, [join], new Date(H(13)));

    // Assess
    expect(result.written).toBe(true);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.message).toMatch(/trimmed to fit one DynamoDB item/);
    expect(warnings[0]?.attributes).toMatchObject({
      userId: user.id,
      prunedTeams: { count: result.fit?.prunedTeams.length, first: result.fit?.prunedTeams.slice(0, 20) },
      floorAt: result.after.floorAt,
    });
    expect((result.fit?.prunedTeams.length ?? 0) > 20).toBe(true);
  });
});

describe('an offboarding is always recorded', () => {
  it('drops what must go (pending joins first) and says so on the offboarding outcome', () => {
    // Prepare: a rehire pending after the tombstone, with a large snapshot waiting too
    const future = (id: string, hour: number, body: Partial<ResolvedEvent>): ResolvedEvent =>
      ({ id, occurredAt: H(1), effectiveAt: H(hour), user, ...body }) as ResolvedEvent;
    const pending = [
      future('rehire-a', 30, { type: 'membership.added', team: 'a' }),
      future('rehire-b', 31, { type: 'membership.added', team: 'b' }),
      future('snapshot', 32, {
        type: 'user.teams',
        teams: Object.keys(manyTeams(20, 'snap', () => member(0))),
      }),
      future('leave-a', 33, { type: 'membership.removed', team: 'a' }),
    ];
    const stored = recordOf(
      manyTeams(30, 'team', (n) => member(n % 5)),
      { pending },
    );
    const budget = recordItemBytes(recordOf({}, { offboardedAt: H(10), pending: pending.slice(2) })) + 10;
    const offboarding: ResolvedEvent = { id: 'bye', type: 'user.offboarded', occurredAt: H(10), user };

    // Act
    const result = reduceEvents(stored, user, [offboarding], new Date(H(11)), { budget });

    // Assess
    expect(result.after.offboardedAt).toBe(H(10));
    expect(recordItemBytes(result.after)).toBeLessThanOrEqual(budget);
    expect(currentTeams(result.after)).toEqual([]);
    expect(result.fit?.droppedPending).toEqual(['rehire-b', 'rehire-a']);
    expect((result.after.pending ?? []).map((event) => event.id)).toEqual(['snapshot', 'leave-a']);
    expect(result.outcomes[0]).toMatchObject({
      status: 'applied',
      reason: expect.stringContaining('dropped pending events rehire-b, rehire-a'),
    });
  });

  it('drops a rehire newer than the tombstone before a pending removal that would end it', () => {
    // Prepare: the rehire (12:00) arrived before the offboarding (10:00); its end waits pending
    const leave: ResolvedEvent = {
      id: 'leave-r',
      type: 'membership.removed',
      occurredAt: H(12),
      effectiveAt: H(40),
      user,
      team: 'rehired-0',
    };
    const rehires = manyTeams(10, 'rehired', () => member(12), 60);
    const stored = recordOf(rehires, { pending: [leave] });
    const budget =
      recordItemBytes(recordOf({}, { offboardedAt: H(10), floorAt: H(12), pending: [leave] })) + 10;
    const offboarding: ResolvedEvent = { id: 'bye', type: 'user.offboarded', occurredAt: H(10), user };

    // Act
    const result = reduceEvents(stored, user, [offboarding], new Date(H(13)), { budget });

    // Assess: nothing grants any more, and the pending removal stayed
    expect(currentTeams(result.after)).toEqual([]);
    expect(result.fit?.droppedTeams).toHaveLength(10);
    expect(result.after.floorAt).toBe(H(12));
    expect((result.after.pending ?? []).map((event) => event.id)).toEqual(['leave-r']);
  });
});

describe('pending bounds', () => {
  it('refuses a future-effective event over the byte bound with a permanent reason a person can act on', () => {
    // Prepare: a snapshot of long team names, to take effect next month
    const teams = Array.from({ length: 1000 }, (_, n) => `team-${String(n).padStart(123, '0')}`);
    const snapshot = (id: string): ResolvedEvent => ({
      id,
      type: 'user.teams',
      occurredAt: H(1),
      effectiveAt: '2026-12-20T00:00:00.000Z',
      user,
      teams,
    });
    const first = applyEvent(recordOf({}), snapshot('first'), new Date(H(2)));

    // Act
    const second = () => applyEvent(first.record, snapshot('second'), new Date(H(2)));

    // Assess
    expect(first.outcome.status).toBe('deferred');
    expect(second).toThrow(PendingLimitError);
    expect(second).toThrow(expect.objectContaining({ retryable: false }));
    expect(second).toThrow(new RegExp(`more than ${maxPendingBytes}.*send it again once it is due`));
  });

  it('leaves room for the largest pending list inside the item budget', () => {
    expect(maxPendingBytes * 2).toBeLessThanOrEqual(maxRecordItemBytes);
    expect(maxRecordItemBytes).toBeLessThan(dynamoItemLimitBytes);
  });
});

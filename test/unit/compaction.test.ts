import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compactionWatermark, compactRecord } from '../../lib/core/compaction.ts';
import { currentTeams, isTombstoned } from '../../lib/core/desired.ts';
import { applyEvent, settleRecord } from '../../lib/core/membership.ts';
import type { ApplyStatus, ResolvedEvent, UserRecord } from '../../lib/domain.ts';
import { fitRecord } from '../../lib/store/bounds.ts';
import { userId } from '../support/factories.ts';

const user = { id: userId(7), name: 'user7' };
const teamNames = ['a', 'b', 'c'] as const;

/** Hour `n` of 20 November 2026: few teams and few distinct instants, so collisions and ties are common. */
const H = (hour: number): string => new Date(Date.UTC(2026, 10, 20, hour)).toISOString();

let sequence = 0;

/** An event with its clock: `at` is the occurrence hour, `effective` a later hour it takes effect. */
const eventArbitrary = fc
  .record({
    kind: fc.constantFrom('added', 'removed', 'offboarded', 'teams'),
    team: fc.constantFrom(...teamNames),
    teams: fc.subarray([...teamNames]),
    at: fc.integer({ min: 0, max: 10 }),
    effective: fc.option(fc.integer({ min: 0, max: 14 }), { nil: undefined }),
    expires: fc.option(fc.integer({ min: 0, max: 14 }), { nil: undefined }),
  })
  .map(({ kind, team, teams, at, effective, expires }): ResolvedEvent => {
    const common = {
      id: `e${++sequence}`,
      occurredAt: H(at),
      ...(effective === undefined ? {} : { effectiveAt: H(effective) }),
      user,
    };
    switch (kind) {
      case 'added':
        return {
          ...common,
          type: 'membership.added',
          team,
          ...(expires === undefined ? {} : { expiresAt: H(expires) }),
        };
      case 'removed':
        return { ...common, type: 'membership.removed', team };
      case 'offboarded':
        return { ...common, type: 'user.offboarded' };
      default:
        return { ...common, type: 'user.teams', teams };
    }
  });

/** Events applied as the store applies them: settle at `now`, the event, settle again. */
const stepArbitrary = fc.record({ event: eventArbitrary, advance: fc.integer({ min: 0, max: 4 }) });

interface Trace {
  record: UserRecord;
  statuses: ApplyStatus[];
  /** What a reader sees after each step. */
  views: unknown[];
}

const memberFacts = (record: UserRecord) =>
  Object.fromEntries(
    Object.entries(record.teams)
      .filter(([, fact]) => fact.member)
      .map(([team, fact]) => [team, { at: fact.at, expiresAt: fact.expiresAt }]),
  );

const view = (record: UserRecord, now: Date) => ({
  current: currentTeams(record, now),
  tombstoned: isTombstoned(record, now),
  members: memberFacts(record),
  offboardedAt: record.offboardedAt,
  snapshotAt: record.snapshotAt,
  floorAt: record.floorAt,
  pending: (record.pending ?? []).map((event) => event.id),
});

/** Runs the steps from `start` at hours from `hour`; `compact` after each step when asked. */
const run = (
  start: UserRecord,
  steps: ReadonlyArray<{ event: ResolvedEvent; advance: number }>,
  hour: number,
  compact: boolean,
): Trace => {
  let record = start;
  let clock = hour;
  const statuses: ApplyStatus[] = [];
  const views: unknown[] = [];
  for (const { event, advance } of steps) {
    clock += advance;
    const now = new Date(H(clock));
    const first = settleRecord(record, now);
    const step = applyEvent(first.record, event, now);
    const last = settleRecord(step.record, now);
    statuses.push(
      step.outcome.status,
      ...first.outcomes.map((o) => o.status),
      ...last.outcomes.map((o) => o.status),
    );
    record = compact ? compactRecord(last.record).record : last.record;
    views.push(view(record, now));
  }
  return { record, statuses, views };
};

const empty: UserRecord = { userId: user.id, userName: user.name, teams: {}, version: 0 };

/** A record the reducer can reach, sometimes after the store pruned markers to fit (floorAt). */
const reachable = fc
  .record({
    history: fc.array(stepArbitrary, { maxLength: 20 }),
    budget: fc.option(fc.integer({ min: 160, max: 420 }), { nil: undefined }),
  })
  .map(({ history, budget }) => {
    const record = run(empty, history, 0, false).record;
    if (budget === undefined) return record;
    // The store prunes only a record that changed; `before: record` keeps the fit from refusing.
    return fitRecord(record, { before: record, budget }).record;
  });

describe('exact compaction of a user record', () => {
  it('changes no verdict and no current team, whatever comes later', () => {
    fc.assert(
      fc.property(reachable, fc.array(stepArbitrary, { minLength: 1, maxLength: 12 }), (record, later) => {
        // Prepare
        const compacted = compactRecord(record).record;

        // Act
        const kept = run(record, later, 11, false);
        const dropped = run(compacted, later, 11, true);

        // Assess
        expect(dropped.statuses).toEqual(kept.statuses);
        expect(dropped.views).toEqual(kept.views);
        expect(compactRecord(kept.record).record.teams).toEqual(dropped.record.teams);
      }),
      { seed: 20261120, numRuns: 1000 },
    );
  });

  it('drops every left-team marker at or before the watermark and nothing else', () => {
    fc.assert(
      fc.property(reachable, (record) => {
        // Act
        const { record: compacted, dropped } = compactRecord(record);

        // Assess
        const watermark = compactionWatermark(record);
        const limit = watermark === undefined ? Number.NEGATIVE_INFINITY : Date.parse(watermark);
        for (const [team, fact] of Object.entries(record.teams)) {
          const redundant = !fact.member && Date.parse(fact.at) <= limit;
          expect(Object.hasOwn(compacted.teams, team)).toBe(!redundant);
          expect(dropped.includes(team)).toBe(redundant);
        }
      }),
      { seed: 20261121, numRuns: 300 },
    );
  });

  it('reads a marker older than the floor as left at the floor, so dropping it changes nothing', () => {
    // Prepare: pruning raised the floor to 08:00 while an older membership stayed
    const record: UserRecord = {
      ...empty,
      floorAt: H(8),
      teams: { a: { member: true, at: H(2), eventId: 'join' } },
    };
    const removal: ResolvedEvent = {
      id: 'leave',
      type: 'membership.removed',
      occurredAt: H(5),
      user,
      team: 'a',
    };
    const lateJoin: ResolvedEvent = {
      id: 'late',
      type: 'membership.added',
      occurredAt: H(6),
      user,
      team: 'a',
    };
    const now = new Date(H(12));

    // Act
    const left = applyEvent(record, removal, now).record;
    const kept = applyEvent(left, lateJoin, now);
    const dropped = applyEvent(compactRecord(left).record, lateJoin, now);

    // Assess
    expect(compactRecord(left).dropped).toEqual(['a']);
    expect(kept.outcome.status).toBe('stale');
    expect(dropped.outcome.status).toBe('stale');
    expect(currentTeams(kept.record, now)).toEqual([]);
  });

  it('leaves a record with no watermark as it is (the same object)', () => {
    // Prepare
    const record: UserRecord = {
      ...empty,
      teams: {
        a: { member: false, at: H(3), eventId: 'left' },
        b: { member: true, at: H(2), eventId: 'join' },
      },
    };

    // Act
    const result = compactRecord(record);

    // Assess
    expect(result.record).toBe(record);
    expect(result.dropped).toEqual([]);
  });

  it('after an offboarding, keeps only what is newer than the tombstone', () => {
    // Prepare
    const record: UserRecord = {
      ...empty,
      offboardedAt: H(10),
      teams: {
        a: { member: false, at: H(10), eventId: 'off' },
        b: { member: false, at: H(11), eventId: 'left-after-rehire' },
        c: { member: true, at: H(12), eventId: 'rehire' },
      },
    };

    // Act
    const { record: compacted, dropped } = compactRecord(record);

    // Assess
    expect(dropped).toEqual(['a']);
    expect(Object.keys(compacted.teams).sort()).toEqual(['b', 'c']);
  });
});

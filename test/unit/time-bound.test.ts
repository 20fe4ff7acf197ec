import { describe, expect, it } from 'vitest';
import { currentTeams, desiredLevels, isTombstoned } from '../../lib/core/desired.ts';
import {
  applyEvent,
  maxPendingEvents,
  needsSettling,
  nextChangeAt,
  PendingLimitError,
  settleRecord,
} from '../../lib/core/membership.ts';
import { plan } from '../../lib/core/planner.ts';
import type { ApplyOutcome, ApplyStatus, ResolvedEvent, UserRecord } from '../../lib/domain.ts';
import { reduceEvents } from '../../lib/store/reduce.ts';
import { actualFactory, policyFactory, userId } from '../support/factories.ts';

const user = { id: userId(1), name: 'user1' };

/** Day `n` of November 2026 at 09:00 UTC: the controlled clock of every test. */
const D = (day: number): string => `2026-11-${String(day).padStart(2, '0')}T09:00:00.000Z`;
const on = (day: number): Date => new Date(D(day));

let sequence = 0;
const nextId = (): string => `evt-${++sequence}`;

interface Timing {
  /** `occurredAt` day. */
  day: number;
  /** `effectiveAt` day. */
  effective?: number;
  id?: string;
}

const timing = ({ day, effective, id = nextId() }: Timing) => ({
  id,
  occurredAt: D(day),
  ...(effective === undefined ? {} : { effectiveAt: D(effective) }),
  user,
});

/** Resolved events, each with an occurrence day and optionally an effective day. */
const ev = {
  added: (team: string, t: Timing & { expires?: number }): ResolvedEvent => ({
    ...timing(t),
    type: 'membership.added',
    team,
    ...(t.expires === undefined ? {} : { expiresAt: D(t.expires) }),
  }),
  removed: (team: string, t: Timing): ResolvedEvent => ({ ...timing(t), type: 'membership.removed', team }),
  offboarded: (t: Timing): ResolvedEvent => ({ ...timing(t), type: 'user.offboarded' }),
  teams: (teams: string[], t: Timing): ResolvedEvent => ({ ...timing(t), type: 'user.teams', teams }),
};

/** One store `apply` (settle, events, settle) at a day of the clock; events may be empty (`applyDue`). */
interface Step {
  now: number;
  events?: ResolvedEvent[];
}

/** Runs the steps like the store does; returns the record and every outcome status, in order. */
const timeline = (steps: Step[]) => {
  let record: UserRecord | undefined;
  const statuses: ApplyStatus[] = [];
  const settled: ApplyOutcome[] = [];
  for (const step of steps) {
    const reduced = reduceEvents(record, user, step.events ?? [], on(step.now));
    record = reduced.after;
    statuses.push(...reduced.outcomes.map((outcome) => outcome.status));
    settled.push(...reduced.settled);
  }
  return { record: record as UserRecord, statuses, settled };
};

const pendingIds = (record: UserRecord): string[] => (record.pending ?? []).map((event) => event.id);

describe('future-effective events', () => {
  it.each<[string, Step[], number, string[], ApplyStatus[]]>([
    [
      'a future join is deferred: no team yet',
      [{ now: 1, events: [ev.added('a', { day: 1, effective: 5 })] }],
      4,
      [],
      ['deferred'],
    ],
    [
      'a future join applies when due',
      [{ now: 1, events: [ev.added('a', { day: 1, effective: 5 })] }, { now: 5 }],
      5,
      ['a'],
      ['deferred'],
    ],
    [
      'a leaver keeps access until the last day',
      [
        { now: 1, events: [ev.added('a', { day: 1 })] },
        { now: 2, events: [ev.removed('a', { day: 2, effective: 10 })] },
        { now: 9 },
      ],
      9,
      ['a'],
      ['applied', 'deferred'],
    ],
    [
      'a leaver loses access on the last day',
      [
        { now: 1, events: [ev.added('a', { day: 1 })] },
        { now: 2, events: [ev.removed('a', { day: 2, effective: 10 })] },
        { now: 10 },
      ],
      10,
      [],
      ['applied', 'deferred'],
    ],
    [
      'the last day beats a join that happened before it but arrived later',
      [
        { now: 2, events: [ev.removed('a', { day: 2, effective: 10 })] },
        { now: 6, events: [ev.added('a', { day: 5 })] },
        { now: 11 },
      ],
      11,
      [],
      ['deferred', 'applied'],
    ],
    [
      'a join after the last day counts',
      [
        { now: 2, events: [ev.added('a', { day: 1 }), ev.removed('a', { day: 2, effective: 10 })] },
        { now: 12, events: [ev.added('a', { day: 12 })] },
      ],
      12,
      ['a'],
      ['applied', 'deferred', 'applied'],
    ],
    [
      'an event already due applies at once, at its effective instant (a removal after it is newer)',
      [{ now: 5, events: [ev.added('a', { day: 5, effective: 3 }), ev.removed('a', { day: 4 })] }],
      5,
      [],
      ['applied', 'applied'],
    ],
    [
      'a due event arriving late is judged at its effective instant (stale)',
      [
        { now: 5, events: [ev.removed('a', { day: 4 })] },
        { now: 6, events: [ev.added('a', { day: 6, effective: 3 })] },
      ],
      6,
      [],
      ['applied', 'stale'],
    ],
    [
      'an occurredAt ahead of the clock without effectiveAt is skew: applied at once',
      [{ now: 1, events: [ev.added('a', { day: 2 })] }],
      1,
      ['a'],
      ['applied'],
    ],
    [
      'the same deferred event twice is kept once',
      [
        {
          now: 1,
          events: [
            ev.added('a', { day: 1, effective: 5, id: 'x' }),
            ev.added('a', { day: 1, effective: 5, id: 'x' }),
          ],
        },
      ],
      1,
      [],
      ['deferred', 'duplicate'],
    ],
    [
      'a deferred snapshot applies when due',
      [
        { now: 1, events: [ev.added('a', { day: 1 }), ev.teams(['b'], { day: 1, effective: 7 })] },
        { now: 7 },
      ],
      7,
      ['b'],
      ['applied', 'deferred'],
    ],
  ])('%s', (_name, steps, day, expectedTeams, expectedStatuses) => {
    // Act
    const { record, statuses } = timeline(steps);

    // Assess
    expect(currentTeams(record, on(day))).toEqual(expectedTeams);
    expect(statuses).toEqual(expectedStatuses);
  });

  it('keeps a deferred event in the record, in order of instant, and records the fact at its effective instant', () => {
    // Prepare
    const late = ev.added('b', { day: 1, effective: 9, id: 'late' });
    const early = ev.added('a', { day: 1, effective: 4, id: 'early' });

    // Act
    const pending = timeline([{ now: 1, events: [late, early] }]).record;
    const settled = timeline([{ now: 1, events: [late, early] }, { now: 4 }]);

    // Assess
    expect(pending.pending).toEqual([early, late]);
    expect(pending.teams).toEqual({});
    expect(pendingIds(settled.record)).toEqual(['late']);
    expect(settled.record.teams.a).toEqual({ member: true, at: D(4), eventId: 'early' });
    expect(settled.settled).toMatchObject([{ eventId: 'early', status: 'applied', changedTeams: ['a'] }]);
  });

  it(`refuses more than ${maxPendingEvents} pending events with a permanent PendingLimitError`, () => {
    // Prepare
    const events = Array.from({ length: maxPendingEvents }, (_, i) =>
      ev.added(`team-${i}`, { day: 1, effective: 20, id: `p-${i}` }),
    );
    const full = timeline([{ now: 1, events }]).record;

    // Act
    const adding = () => applyEvent(full, ev.added('one-more', { day: 1, effective: 21 }), on(1));
    const again = applyEvent(full, events[0] as ResolvedEvent, on(1));

    // Assess
    expect(full.pending).toHaveLength(maxPendingEvents);
    expect(adding).toThrow(PendingLimitError);
    expect(adding).toThrow(expect.objectContaining({ retryable: false, name: 'PendingLimitError' }));
    expect(again.outcome.status).toBe('duplicate');
  });

  it('applies every event at once when no clock is given (pure callers that cannot know time)', () => {
    // Act
    const { record, outcome } = applyEvent(undefined, ev.added('a', { day: 1, effective: 30 }));

    // Assess
    expect(outcome.status).toBe('applied');
    expect(record.teams.a?.at).toBe(D(30));
    expect(record.pending).toBeUndefined();
  });
});

describe('future offboarding and the tombstone', () => {
  it('keeps access until the offboarding is due, then removes every older team', () => {
    // Prepare
    const steps: Step[] = [
      { now: 1, events: [ev.added('a', { day: 1 }), ev.added('b', { day: 1 })] },
      { now: 2, events: [ev.offboarded({ day: 2, effective: 15 })] },
    ];

    // Act
    const before = timeline([...steps, { now: 14 }]).record;
    const after = timeline([...steps, { now: 15 }]).record;

    // Assess
    expect(currentTeams(before, on(14))).toEqual(['a', 'b']);
    expect(isTombstoned(before, on(14))).toBe(false);
    expect(after.offboardedAt).toBe(D(15));
    expect(isTombstoned(after, on(15))).toBe(true);
    expect(after.pending).toBeUndefined();
  });

  it('cancels pending facts effective at or before the offboarding and keeps a later one (a rehire)', () => {
    // Prepare
    const earlyJoin = ev.added('a', { day: 1, effective: 5, id: 'early-join' });
    const sameInstant = ev.added('c', { day: 1, effective: 10, id: 'same-instant' });
    const rehire = ev.added('b', { day: 1, effective: 20, id: 'rehire' });
    const pending = timeline([{ now: 1, events: [earlyJoin, sameInstant, rehire] }]).record;

    // Act
    const { record, outcome } = applyEvent(pending, ev.offboarded({ day: 10 }), on(10));
    const later = timeline([
      { now: 1, events: [earlyJoin, sameInstant, rehire] },
      { now: 10, events: [ev.offboarded({ day: 10 })] },
      { now: 20 },
    ]);

    // Assess
    expect(outcome).toMatchObject({ status: 'applied', cancelled: ['early-join', 'same-instant'] });
    expect(pendingIds(record)).toEqual(['rehire']);
    expect(currentTeams(later.record, on(20))).toEqual(['b']);
    expect(isTombstoned(later.record, on(20))).toBe(false);
  });

  it('never keeps a future fact the tombstone already decides', () => {
    // Prepare
    const offboarded = timeline([{ now: 10, events: [ev.offboarded({ day: 10 })] }]).record;

    // Act
    const join = applyEvent(offboarded, ev.added('a', { day: 10, effective: 9 }), on(10));
    const olderOffboarding = applyEvent(offboarded, ev.offboarded({ day: 8 }), on(10));

    // Assess
    expect(join.outcome.status).toBe('superseded-by-offboarding');
    expect(olderOffboarding.outcome.status).toBe('stale');
    expect(join.record).toBe(offboarded);
  });

  it('a pending offboarding applied when due removes a join that arrived before it', () => {
    // Act
    const { record } = timeline([
      { now: 1, events: [ev.offboarded({ day: 1, effective: 10 })] },
      { now: 5, events: [ev.added('a', { day: 5 })] },
      { now: 12 },
    ]);

    // Assess: the removal marker itself is compacted away by the store (the tombstone decides it)
    expect(currentTeams(record)).toEqual([]);
    expect(record.teams.a?.member ?? false).toBe(false);
    expect(record.offboardedAt).toBe(D(10));
    expect(applyEvent(record, ev.added('a', { day: 9 }), on(12)).outcome.status).toBe(
      'superseded-by-offboarding',
    );
  });
});

describe('memberships that expire', () => {
  const contractor = (): ResolvedEvent => ev.added('a', { day: 1, expires: 10, id: 'contract' });

  it.each<[string, number, string[]]>([
    ['current before the expiry', 9, ['a']],
    ['not current at the expiry instant', 10, []],
    ['not current after the expiry', 11, []],
  ])('%s', (_name, day, expected) => {
    // Prepare
    const { record } = timeline([{ now: 1, events: [contractor()] }]);

    // Act
    const teams = currentTeams(record, on(day));

    // Assess
    expect(teams).toEqual(expected);
    expect(record.teams.a).toEqual({ member: true, at: D(1), eventId: 'contract', expiresAt: D(10) });
  });

  it('settling turns an expired membership into a removal at expiresAt', () => {
    // Prepare
    const { record } = timeline([{ now: 1, events: [contractor()] }]);

    // Act
    const early = settleRecord(record, on(9));
    const late = settleRecord(record, on(12));

    // Assess
    expect(early.record).toBe(record);
    expect(early.outcomes).toEqual([]);
    expect(late.record.teams.a).toEqual({ member: false, at: D(10), eventId: 'contract' });
    expect(late.outcomes).toEqual([
      expect.objectContaining({ eventId: 'contract', status: 'applied', changedTeams: ['a'] }),
    ]);
  });

  it.each<[string, Step[], number, string[], ApplyStatus[]]>([
    [
      'a rejoin after the expiry counts',
      [
        { now: 1, events: [ev.added('a', { day: 1, expires: 10 })] },
        { now: 12, events: [ev.added('a', { day: 12 })] },
      ],
      12,
      ['a'],
      ['applied', 'applied'],
    ],
    [
      'a renewal before the expiry replaces the expiring fact',
      [
        { now: 1, events: [ev.added('a', { day: 1, expires: 10 })] },
        { now: 8, events: [ev.added('a', { day: 8, expires: 20 })] },
      ],
      15,
      ['a'],
      ['applied', 'applied'],
    ],
    [
      'a join older than the expiry that arrives after it is stale',
      [
        { now: 1, events: [ev.added('a', { day: 1, expires: 10 })] },
        { now: 12, events: [ev.added('a', { day: 8 })] },
      ],
      12,
      [],
      ['applied', 'stale'],
    ],
    [
      'a membership that arrives already expired is recorded as ended',
      [{ now: 12, events: [ev.added('a', { day: 1, expires: 10 })] }],
      12,
      [],
      ['applied'],
    ],
    [
      'an expiry wins over a join at the same instant (the removal wins ties)',
      [
        {
          now: 1,
          events: [ev.added('a', { day: 1, expires: 10 }), ev.added('a', { day: 1, effective: 10 })],
        },
        { now: 10 },
      ],
      10,
      [],
      ['applied', 'deferred'],
    ],
    [
      'a deferred join with an expiry grants from its start to its end',
      [{ now: 1, events: [ev.added('a', { day: 1, effective: 5, expires: 8 })] }, { now: 6 }],
      6,
      ['a'],
      ['deferred'],
    ],
  ])('%s', (_name, steps, day, expectedTeams, expectedStatuses) => {
    // Act
    const { record, statuses } = timeline(steps);

    // Assess
    expect(currentTeams(record, on(day))).toEqual(expectedTeams);
    expect(statuses).toEqual(expectedStatuses);
  });

  it('settles in order of instant: a pending removal before a later expiry', () => {
    // Prepare
    const { record } = timeline([
      {
        now: 1,
        events: [
          ev.added('a', { day: 1, expires: 10, id: 'join' }),
          ev.removed('a', { day: 1, effective: 5, id: 'leave' }),
        ],
      },
    ]);

    // Act
    const { record: settled, outcomes } = settleRecord(record, on(12));

    // Assess
    expect(outcomes.map((o) => o.eventId)).toEqual(['leave']);
    expect(settled.teams.a).toEqual({ member: false, at: D(5), eventId: 'leave' });
  });

  it('never lets an expiry before its own join move the fact back in time', () => {
    // Prepare
    const { record } = timeline([{ now: 6, events: [ev.added('a', { day: 5, expires: 3 })] }]);

    // Act
    const late = applyEvent(record, ev.removed('a', { day: 4 }), on(6));

    // Assess
    expect(record.teams.a).toMatchObject({ member: false, at: D(5) });
    expect(late.outcome.status).toBe('stale');
  });
});

describe('needsSettling and nextChangeAt', () => {
  it.each<[string, Step[], number, boolean, string | undefined]>([
    ['nothing time-bound', [{ now: 1, events: [ev.added('a', { day: 1 })] }], 30, false, undefined],
    [
      'a pending event not yet due',
      [{ now: 1, events: [ev.added('a', { day: 1, effective: 5 })] }],
      4,
      false,
      D(5),
    ],
    ['a pending event due', [{ now: 1, events: [ev.added('a', { day: 1, effective: 5 })] }], 5, true, D(5)],
    [
      'an expiry not yet reached, with a later pending event',
      [{ now: 1, events: [ev.added('a', { day: 1, expires: 8 }), ev.added('b', { day: 1, effective: 9 })] }],
      7,
      false,
      D(8),
    ],
    ['an expiry reached', [{ now: 1, events: [ev.added('a', { day: 1, expires: 8 })] }], 8, true, D(8)],
    [
      'an expiry already settled',
      [{ now: 1, events: [ev.added('a', { day: 1, expires: 8 })] }, { now: 8 }],
      9,
      false,
      undefined,
    ],
  ])('%s', (_name, steps, day, needed, next) => {
    // Prepare
    const { record } = timeline(steps);

    // Act
    const result = { needed: needsSettling(record, on(day)), next: nextChangeAt(record) };

    // Assess
    expect(result).toEqual({ needed, next });
  });
});

describe('desired levels and the planner with a clock', () => {
  const policy = policyFactory({
    teams: { contractors: { 'core/api': 'write' }, staff: { 'core/docs': 'read' } },
  });
  const contract = (): UserRecord =>
    timeline([
      { now: 1, events: [ev.added('contractors', { day: 1, expires: 10 }), ev.added('staff', { day: 1 })] },
    ]).record;

  it.each<[string, Date | undefined, Record<string, number>]>([
    ['before the expiry', on(9), { 'core/api': 3, 'core/docs': 1 }],
    ['after the expiry', on(10), { 'core/docs': 1 }],
    ['without a clock (expiry not looked at)', undefined, { 'core/api': 3, 'core/docs': 1 }],
  ])('desiredLevels %s', (_name, now, expected) => {
    // Act
    const levels = desiredLevels(contract(), policy, now);

    // Assess
    expect(Object.fromEntries(levels)).toEqual(expected);
  });

  it.each<[string, number, string[]]>([
    ['keeps the grant before the expiry', 9, []],
    ['revokes an expired team even from a record not yet settled', 10, ['revoke core/api']],
  ])('plan %s', (_name, day, expected) => {
    // Prepare
    const record = { ...contract(), version: 1 };
    const batchUser = {
      userId: user.id,
      userName: user.name,
      before: record,
      after: record,
      messageIds: ['m-1'],
      eventIds: ['contract'],
      offboardingInBatch: false,
    };
    const actual = actualFactory({ 'core/api': { 1: 'write' }, 'core/docs': { 1: 'read' } });

    // Act
    const planned = plan({ users: [batchUser], policy, actual, now: on(day) });

    // Assess
    expect(
      planned.calls.map(
        (call) =>
          `${call.action} ${call.target.kind === 'repo' ? `${call.target.namespace}/${call.target.repository}` : call.target.namespace}`,
      ),
    ).toEqual(expected);
    expect(planned.skipped).toEqual([]);
  });
});

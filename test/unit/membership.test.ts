import { describe, expect, it } from 'vitest';
import { activeTeams, applyEvent, isOffboarded } from '../../lib/core/membership.ts';
import type { ApplyStatus, ResolvedEvent, TeamFact, UserRecord } from '../../lib/domain.ts';

const user = { id: 'fb3f175c1fd146ab8cdae3272be6107b', name: 'user01' };
const T = (hour: number, zone = 'Z'): string =>
  zone === 'Z'
    ? `2026-11-20T${String(hour).padStart(2, '0')}:00:00Z`
    : `2026-11-20T${String(hour + 1).padStart(2, '0')}:00:00${zone}`;

let sequence = 0;
const nextId = (): string => `evt-${++sequence}`;

/** Resolved events by type, at an instant, with a generated (or given) id. */
const ev = {
  added: (team: string, at: string, id = nextId()): ResolvedEvent => ({
    id,
    type: 'membership.added',
    occurredAt: at,
    user,
    team,
  }),
  removed: (team: string, at: string, id = nextId()): ResolvedEvent => ({
    id,
    type: 'membership.removed',
    occurredAt: at,
    user,
    team,
  }),
  offboarded: (at: string, id = nextId()): ResolvedEvent => ({
    id,
    type: 'user.offboarded',
    occurredAt: at,
    user,
  }),
  teams: (teams: string[], at: string, id = nextId()): ResolvedEvent => ({
    id,
    type: 'user.teams',
    occurredAt: at,
    user,
    teams,
  }),
};

/** Runs the reducer over events in order, from `start`. */
const run = (events: ResolvedEvent[], start?: UserRecord) => {
  let record = start;
  const statuses: ApplyStatus[] = [];
  for (const event of events) {
    const step = applyEvent(record, event);
    record = step.record;
    statuses.push(step.outcome.status);
  }
  return { record: record!, statuses };
};

/** team → member, for compact expectations. */
const membership = (record: UserRecord): Record<string, boolean> =>
  Object.fromEntries(Object.entries(record.teams).map(([team, fact]) => [team, fact.member]));

describe('applyEvent: order and staleness rules', () => {
  it.each<[string, ResolvedEvent[], Record<string, boolean>, ApplyStatus[]]>([
    ['join', [ev.added('a', T(10))], { a: true }, ['applied']],
    ['join then leave', [ev.added('a', T(10)), ev.removed('a', T(11))], { a: false }, ['applied', 'applied']],
    ['leave of an unseen team is kept as a marker', [ev.removed('a', T(10))], { a: false }, ['applied']],
    [
      'older leave after a join is stale',
      [ev.added('a', T(11)), ev.removed('a', T(10))],
      { a: true },
      ['applied', 'stale'],
    ],
    [
      'older join after a leave is stale',
      [ev.removed('a', T(11)), ev.added('a', T(10))],
      { a: false },
      ['applied', 'stale'],
    ],
    [
      'same join twice is a duplicate',
      [ev.added('a', T(10), 'x'), ev.added('a', T(10), 'x')],
      { a: true },
      ['applied', 'duplicate'],
    ],
    [
      'same instant, other zone, same value: duplicate',
      [ev.added('a', T(10)), ev.added('a', T(10, '+01:00'))],
      { a: true },
      ['applied', 'duplicate'],
    ],
    [
      'zone-aware comparison: 10:30+01:00 is before 10:00Z',
      [ev.added('a', T(10)), ev.removed('a', '2026-11-20T10:30:00+01:00')],
      { a: true },
      ['applied', 'stale'],
    ],
    [
      'tie: removal after join at the same instant wins',
      [ev.added('a', T(10)), ev.removed('a', T(10))],
      { a: false },
      ['applied', 'applied'],
    ],
    [
      'tie: join after removal at the same instant loses',
      [ev.removed('a', T(10)), ev.added('a', T(10))],
      { a: false },
      ['applied', 'stale'],
    ],
    [
      'newer join after older join moves the fact on',
      [ev.added('a', T(10)), ev.added('a', T(12)), ev.removed('a', T(11))],
      { a: true },
      ['applied', 'applied', 'stale'],
    ],
    [
      'teams are independent',
      [ev.added('a', T(12)), ev.removed('b', T(10)), ev.added('b', T(11))],
      { a: true, b: true },
      ['applied', 'applied', 'applied'],
    ],
    [
      'tombstone beats an older join',
      [ev.offboarded(T(12)), ev.added('a', T(11))],
      {},
      ['applied', 'superseded-by-offboarding'],
    ],
    [
      'tombstone beats a join at the same instant',
      [ev.offboarded(T(12)), ev.added('a', T(12))],
      {},
      ['applied', 'superseded-by-offboarding'],
    ],
    [
      'offboarding removes older memberships',
      [ev.added('a', T(10)), ev.added('b', T(11)), ev.offboarded(T(12))],
      { a: false, b: false },
      ['applied', 'applied', 'applied'],
    ],
    [
      'offboarding removes a join at the same instant',
      [ev.added('a', T(12)), ev.offboarded(T(12))],
      { a: false },
      ['applied', 'applied'],
    ],
    [
      'rehire: a join newer than the tombstone counts',
      [ev.added('a', T(10)), ev.offboarded(T(12)), ev.added('b', T(13))],
      { a: false, b: true },
      ['applied', 'applied', 'applied'],
    ],
    [
      'late offboarding keeps a later join (rehire arrived first)',
      [ev.added('b', T(13)), ev.offboarded(T(12))],
      { b: true },
      ['applied', 'applied'],
    ],
    [
      'late older offboarding after a rehire is stale',
      [ev.offboarded(T(12)), ev.added('b', T(13)), ev.offboarded(T(11))],
      { b: true },
      ['applied', 'applied', 'stale'],
    ],
    [
      'same offboarding twice is a duplicate',
      [ev.offboarded(T(12)), ev.offboarded(T(12))],
      {},
      ['applied', 'duplicate'],
    ],
    [
      'newer offboarding after a rehire removes the rehire',
      [ev.offboarded(T(12)), ev.added('b', T(13)), ev.offboarded(T(14))],
      { b: false },
      ['applied', 'applied', 'applied'],
    ],
    [
      'snapshot adds listed teams and removes the others',
      [ev.added('a', T(10)), ev.added('b', T(10)), ev.teams(['b', 'c'], T(11))],
      { a: false, b: true, c: true },
      ['applied', 'applied', 'applied'],
    ],
    [
      'snapshot deduplicated by the parser; empty = no team',
      [ev.added('a', T(10)), ev.teams([], T(11))],
      { a: false },
      ['applied', 'applied'],
    ],
    [
      'same snapshot twice is a duplicate',
      [ev.teams(['a'], T(11), 's'), ev.teams(['a'], T(11), 's')],
      { a: true },
      ['applied', 'duplicate'],
    ],
    [
      'older snapshot is stale',
      [ev.teams(['a'], T(11)), ev.teams(['b'], T(10))],
      { a: true },
      ['applied', 'stale'],
    ],
    [
      'snapshot keeps newer per-team facts',
      [ev.added('x', T(12)), ev.teams(['a'], T(11))],
      { x: true, a: true },
      ['applied', 'applied'],
    ],
    [
      'snapshot older than the tombstone is superseded',
      [ev.offboarded(T(12)), ev.teams(['a'], T(11))],
      {},
      ['applied', 'superseded-by-offboarding'],
    ],
    ['empty snapshot of a new user records its instant', [ev.teams([], T(11))], {}, ['applied']],
    [
      'older join of a team a newer snapshot did not list is stale',
      [ev.teams(['a'], T(11)), ev.added('b', T(10))],
      { a: true },
      ['applied', 'stale'],
    ],
    [
      'join at the snapshot instant of an unlisted team is stale',
      [ev.teams([], T(11)), ev.added('b', T(11))],
      {},
      ['applied', 'stale'],
    ],
    [
      'newer join after a snapshot counts',
      [ev.teams(['a'], T(11)), ev.added('b', T(12))],
      { a: true, b: true },
      ['applied', 'applied'],
    ],
    [
      'older empty snapshot after a newer one is stale',
      [ev.teams([], T(11)), ev.teams([], T(10))],
      {},
      ['applied', 'stale'],
    ],
  ])('%s', (_name, events, expectedTeams, expectedStatuses) => {
    // Act
    const { record, statuses } = run(events);

    // Assess
    expect(membership(record)).toEqual(expectedTeams);
    expect(statuses).toEqual(expectedStatuses);
  });
});

describe('applyEvent: what the record keeps', () => {
  it('records the fact instant and event id per team, and the tombstone', () => {
    // Act
    const { record } = run([
      ev.added('a', T(10), 'join-1'),
      ev.added('b', T(14), 'join-2'),
      ev.offboarded(T(12), 'off-1'),
    ]);

    // Assess
    expect(record).toEqual({
      userId: user.id,
      userName: user.name,
      version: 0,
      offboardedAt: T(12),
      teams: {
        a: { member: false, at: T(12), eventId: 'off-1' } satisfies TeamFact,
        b: { member: true, at: T(14), eventId: 'join-2' } satisfies TeamFact,
      },
    });
  });

  it('neither mutates the record passed in nor touches its version', () => {
    // Prepare
    const start = run([ev.added('a', T(10))]).record;
    const stored: UserRecord = { ...start, version: 7 };
    const copy = structuredClone(stored);

    // Act
    const { record } = applyEvent(stored, ev.removed('a', T(11)));

    // Assess
    expect(stored).toEqual(copy);
    expect(record.version).toBe(7);
    expect(record.teams.a?.member).toBe(false);
  });

  it('returns the same record and a reason when nothing applies', () => {
    // Prepare
    const stored = run([ev.added('a', T(11))]).record;

    // Act
    const { record, outcome } = applyEvent(stored, ev.removed('a', T(10), 'late'));

    // Assess
    expect(record).toBe(stored);
    expect(outcome).toMatchObject({ eventId: 'late', status: 'stale', changedTeams: [] });
    expect(outcome.reason).toBeTruthy();
  });

  it('lists the teams an event changed, sorted', () => {
    // Prepare
    const stored = run([ev.added('z', T(10)), ev.added('m', T(10)), ev.added('keep', T(13))]).record;

    // Act
    const { outcome } = applyEvent(stored, ev.offboarded(T(12)));

    // Assess
    expect(outcome.changedTeams).toEqual(['m', 'z']);
  });

  it('keeps the user name up to date from applied events', () => {
    // Prepare
    const stored = run([ev.added('a', T(10))]).record;
    const renamed: ResolvedEvent = { ...ev.added('b', T(11)), user: { id: user.id, name: 'user01-renamed' } };

    // Act
    const { record } = applyEvent(stored, renamed);

    // Assess
    expect(record.userName).toBe('user01-renamed');
  });

  it('treats team names that are Object.prototype keys as plain teams', () => {
    // Act
    const { record, statuses } = run([ev.added('constructor', T(10)), ev.removed('toString', T(10))]);

    // Assess
    expect(statuses).toEqual(['applied', 'applied']);
    expect(membership(record)).toEqual({ constructor: true, toString: false });
  });
});

describe('activeTeams and isOffboarded', () => {
  it.each<[string, ResolvedEvent[], string[], boolean]>([
    [
      'never offboarded',
      [ev.added('b', T(10)), ev.added('a', T(10)), ev.removed('c', T(10))],
      ['a', 'b'],
      false,
    ],
    ['no team but no tombstone', [ev.removed('a', T(10))], [], false],
    ['offboarded', [ev.added('a', T(10)), ev.offboarded(T(11))], [], true],
    ['offboarded then rehired', [ev.offboarded(T(11)), ev.added('a', T(12))], ['a'], false],
  ])('%s', (_name, events, active, offboarded) => {
    // Prepare
    const { record } = run(events);

    // Act
    const result = { active: activeTeams(record), offboarded: isOffboarded(record) };

    // Assess
    expect(result).toEqual({ active, offboarded });
  });
});

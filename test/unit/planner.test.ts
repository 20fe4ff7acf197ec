import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BatchUser } from '../../lib/core/planner.ts';
import { plan, touchedTargets } from '../../lib/core/planner.ts';
import type { PermissionName, Plan, TargetAccess } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import { actualFactory, batchUserFactory, policyFactory, userId } from '../support/factories.ts';

const now = new Date('2026-11-20T10:00:05Z');

const policy = policyFactory({
  teams: {
    platform: { 'core/api/server': 'write', tools: 'read' },
    backend: { 'core/api/server': 'read', 'core/api/worker': 'write' },
    security: { 'core/api/server': 'manage' },
    data: { 'data/etl/jobs': 'write' },
  },
  protectedUsers: [userId(5)],
});

const allTargets = ['core/api/server', 'core/api/worker', 'data/etl/jobs', 'tools'];

/** A call as a short line: `grant core/api/server 1:write 2:read` / `revoke tools 1`. */
const summarize = (result: Plan): string[] =>
  result.calls.map((call) => {
    const who =
      call.action === 'revoke'
        ? call.userIds.map((id) => String(Number.parseInt(id, 16)))
        : call.users.map((user) => `${Number.parseInt(user.user_id, 16)}:${user.auth}`);
    return [call.action, targetKey(call.target), ...who].join(' ');
  });

interface Case {
  name: string;
  users: BatchUser[];
  actual: Record<string, Record<number, PermissionName>>;
  self?: number;
  expected: string[];
}

const cases: Case[] = [
  {
    name: 'join → grant on every target of the team',
    users: [batchUserFactory({ id: 1, after: { platform: true } })],
    actual: { 'core/api/server': {}, tools: {} },
    expected: ['grant tools 1:1', 'grant core/api/server 1:3'],
  },
  {
    name: 'multi-team: leaving A keeps what B gives at the same or a higher level',
    users: [
      batchUserFactory({
        id: 1,
        before: { platform: true, security: true },
        after: { platform: false, security: true },
      }),
    ],
    actual: { 'core/api/server': { 1: 'manage' }, tools: { 1: 'read' } },
    expected: ['revoke tools 1'],
  },
  {
    name: 'multi-team: write by A + read by B, leaving A → change to read, not revoke',
    users: [
      batchUserFactory({
        id: 1,
        before: { platform: true, backend: true },
        after: { platform: false, backend: true },
      }),
    ],
    actual: {
      'core/api/server': { 1: 'write' },
      'core/api/worker': { 1: 'write' },
      tools: { 1: 'read' },
    },
    expected: ['revoke tools 1', 'change core/api/server 1:1'],
  },
  {
    name: 'highest level of the current teams wins on join',
    users: [batchUserFactory({ id: 1, before: { backend: true }, after: { backend: true, security: true } })],
    actual: { 'core/api/server': { 1: 'read' }, 'core/api/worker': { 1: 'write' } },
    expected: ['change core/api/server 1:7'],
  },
  {
    name: 'leave the last team → revoke',
    users: [batchUserFactory({ id: 1, before: { data: true }, after: { data: false } })],
    actual: { 'data/etl/jobs': { 1: 'write' } },
    expected: ['revoke data/etl/jobs 1'],
  },
  {
    name: 'a removed team kept in the record is re-checked on retry (before = after)',
    users: [batchUserFactory({ id: 1, before: { data: false }, after: { data: false } })],
    actual: { 'data/etl/jobs': { 1: 'write' } },
    expected: ['revoke data/etl/jobs 1'],
  },
  {
    name: 'offboarding revokes everything the user has on all policy targets',
    users: [
      batchUserFactory({
        id: 1,
        before: { platform: true },
        after: { platform: false },
        offboardedAt: '2026-11-20T10:00:00Z',
        offboardingInBatch: true,
      }),
    ],
    actual: {
      'core/api/server': { 1: 'write' },
      'core/api/worker': {},
      'data/etl/jobs': { 1: 'read' },
      tools: { 1: 'read' },
    },
    expected: ['revoke tools 1', 'revoke core/api/server 1', 'revoke data/etl/jobs 1'],
  },
  {
    name: 'tombstone without a current team (offboarded earlier) → all targets, nothing desired',
    users: [batchUserFactory({ id: 1, after: { platform: false }, offboardedAt: '2026-11-19T10:00:00Z' })],
    actual: {
      'core/api/server': {},
      'core/api/worker': { 1: 'write' },
      'data/etl/jobs': {},
      tools: {},
    },
    expected: ['revoke core/api/worker 1'],
  },
  {
    name: 'tombstone with rehire: the newer join counts, only its teams are checked',
    users: [
      batchUserFactory({
        id: 1,
        before: { platform: false },
        after: { platform: false, backend: true },
        offboardedAt: '2026-11-19T10:00:00Z',
      }),
    ],
    actual: { 'core/api/server': { 1: 'write' }, 'core/api/worker': {}, tools: { 1: 'read' } },
    expected: ['revoke tools 1', 'change core/api/server 1:1', 'grant core/api/worker 1:3'],
  },
  {
    name: 'offboarding and rehire in one batch: every target checked, rehire team kept',
    users: [
      batchUserFactory({
        id: 1,
        before: { platform: true },
        after: { platform: false, backend: true },
        offboardedAt: '2026-11-20T09:00:00Z',
        offboardingInBatch: true,
      }),
    ],
    actual: {
      'core/api/server': { 1: 'write' },
      'core/api/worker': { 1: 'write' },
      'data/etl/jobs': { 1: 'write' },
      tools: { 1: 'read' },
    },
    expected: ['revoke tools 1', 'change core/api/server 1:1', 'revoke data/etl/jobs 1'],
  },
  {
    name: 'retry after partial success: only what still differs is planned',
    users: [batchUserFactory({ id: 1, after: { platform: true } })],
    actual: { 'core/api/server': { 1: 'write' }, tools: {} },
    expected: ['grant tools 1:1'],
  },
  {
    name: 'retry after full success: nothing planned',
    users: [batchUserFactory({ id: 1, before: { platform: true }, after: { platform: false } })],
    actual: { 'core/api/server': {}, tools: {} },
    expected: [],
  },
  {
    name: 'protected user joining is never in a call',
    users: [batchUserFactory({ id: 5, after: { platform: true } })],
    actual: { 'core/api/server': {}, tools: {} },
    expected: [],
  },
  {
    name: 'protected user offboarded keeps what SWR shows',
    users: [
      batchUserFactory({ id: 5, after: {}, offboardedAt: '2026-11-20T10:00:00Z', offboardingInBatch: true }),
    ],
    actual: {
      'core/api/server': { 5: 'manage' },
      'core/api/worker': { 5: 'write' },
      'data/etl/jobs': { 5: 'write' },
      tools: { 5: 'read' },
    },
    expected: [],
  },
  {
    name: 'the caller (self) offboarded is never revoked',
    users: [
      batchUserFactory({ id: 9, after: {}, offboardedAt: '2026-11-20T10:00:00Z', offboardingInBatch: true }),
    ],
    actual: {
      'core/api/server': { 9: 'manage' },
      'core/api/worker': { 9: 'manage' },
      'data/etl/jobs': { 9: 'manage' },
      tools: { 9: 'manage' },
    },
    self: 9,
    expected: [],
  },
  {
    name: 'users no message names are left alone, even at odd levels',
    users: [batchUserFactory({ id: 1, after: { platform: true } })],
    actual: { 'core/api/server': { 7: 'manage', 8: 'read' }, tools: { 7: 'write' } },
    expected: ['grant tools 1:1', 'grant core/api/server 1:3'],
  },
  {
    name: 'a team the policy does not know touches nothing',
    users: [batchUserFactory({ id: 1, after: { marketing: true } })],
    actual: {},
    expected: [],
  },
  {
    name: 'namespaces first, then per target grant, change, revoke; users sorted by id',
    users: [
      batchUserFactory({ id: 3, before: { platform: true }, after: { platform: false } }),
      batchUserFactory({ id: 2, after: { security: true } }),
      batchUserFactory({ id: 4, after: { backend: true } }),
      batchUserFactory({ id: 1, after: { backend: true } }),
    ],
    actual: {
      'core/api/server': { 2: 'read', 3: 'write' },
      'core/api/worker': { 1: 'write', 4: 'write' },
      tools: { 3: 'read' },
    },
    expected: [
      'revoke tools 3',
      'grant core/api/server 1:1 4:1',
      'change core/api/server 2:7',
      'revoke core/api/server 3',
    ],
  },
];

describe('plan', () => {
  it.each(cases)('$name', ({ users, actual, self, expected }) => {
    // Prepare
    const access = actualFactory(actual, self);

    // Act
    const result = plan({ users, policy, actual: access, now });

    // Assess
    expect(summarize(result)).toEqual(expected);
    expect(result.skipped).toEqual([]);
    expect(result.blocked).toEqual([]);
    expect(result.createdAt).toBe(now.toISOString());
  });

  it('carries user names, levels, events and messages into bodies and changes', () => {
    // Prepare
    const user = batchUserFactory({
      id: 1,
      before: { platform: true, backend: true },
      after: { platform: false, backend: true },
      messageIds: ['m-b', 'm-a', 'm-b'],
      eventIds: ['e-2', 'e-1'],
    });
    const actual = actualFactory({
      'core/api/server': { 1: 'write' },
      'core/api/worker': { 1: 'write' },
      tools: {},
    });

    // Act
    const result = plan({ users: [user], policy, actual, now });

    // Assess
    expect(result.messageIds).toEqual(['m-a', 'm-b']);
    expect(result.calls).toEqual([
      {
        action: 'change',
        target: { kind: 'repo', namespace: 'core', repository: 'api/server' },
        users: [{ user_id: userId(1), user_name: 'user1', auth: 1 }],
        messageIds: ['m-a', 'm-b'],
        changes: [
          {
            reason: { kind: 'events', detail: 'e-1 (event), e-2 (event)' },
            target: { kind: 'repo', namespace: 'core', repository: 'api/server' },
            action: 'change',
            userId: userId(1),
            userName: 'user1',
            before: 3,
            after: 1,
            eventIds: ['e-1', 'e-2'],
            messageIds: ['m-a', 'm-b'],
          },
        ],
      },
    ]);
  });

  it('skips an unreadable target instead of revoking, and blocks the messages that need it', () => {
    // Prepare
    const users = [
      batchUserFactory({
        id: 1,
        before: { data: true, platform: true },
        after: { data: false, platform: false },
      }),
      batchUserFactory({ id: 2, after: { platform: true } }),
      batchUserFactory({ id: 5, before: { data: true }, after: { data: false } }),
    ];
    const actual = actualFactory({ 'core/api/server': { 1: 'write' }, tools: { 1: 'read' } });

    // Act
    const result = plan({ users, policy, actual, now });

    // Assess
    expect(summarize(result)).toEqual([
      'grant tools 2:1',
      'revoke tools 1',
      'grant core/api/server 2:3',
      'revoke core/api/server 1',
    ]);
    expect(result.skipped).toEqual([{ kind: 'repo', namespace: 'data', repository: 'etl/jobs' }]);
    expect(result.blocked).toEqual([
      { messageId: 'm-1', targets: [{ kind: 'repo', namespace: 'data', repository: 'etl/jobs' }] },
    ]);
    expect(result.messageIds).toEqual(['m-1', 'm-2', 'm-5']);
  });

  it('coalesces 10 users joining one team into one POST per target with all 10 users', () => {
    // Prepare
    const ids = Array.from({ length: 10 }, (_, i) => i + 10);
    const users = ids.map((id) => batchUserFactory({ id, after: { platform: true } }));
    const actual = actualFactory({ 'core/api/server': {}, tools: {} });

    // Act
    const result = plan({ users, policy, actual, now });

    // Assess
    expect(result.calls.map((call) => [call.action, targetKey(call.target)])).toEqual([
      ['grant', 'tools'],
      ['grant', 'core/api/server'],
    ]);
    for (const call of result.calls) {
      expect(call.action === 'revoke' ? [] : call.users.map((user) => user.user_id)).toEqual(ids.map(userId));
      expect(call.messageIds).toEqual(ids.map((id) => `m-${id}`).sort());
    }
  });

  it('gives the same plan for the same events delivered twice', () => {
    // Prepare
    const once = batchUserFactory({
      id: 1,
      before: { platform: true },
      after: { platform: false, data: true },
    });
    const twice = { ...once, messageIds: ['m-1-again'] };
    const actual = actualFactory({
      'core/api/server': { 1: 'write' },
      tools: { 1: 'read' },
      'data/etl/jobs': {},
    });

    // Act
    const first = plan({ users: [once], policy, actual, now });
    const replay = plan({ users: [once], policy, actual, now });
    const merged = plan({ users: [once, twice], policy, actual, now });

    // Assess
    expect(replay).toEqual(first);
    expect(summarize(merged)).toEqual(summarize(first));
    expect(merged.calls.every((call) => call.messageIds.join() === 'm-1,m-1-again')).toBe(true);
  });

  it('is deterministic: shuffled users and SWR answers give deep-equal plans', () => {
    // Prepare
    const users = [
      batchUserFactory({ id: 1, after: { platform: true } }),
      batchUserFactory({ id: 2, before: { platform: true }, after: { platform: false, backend: true } }),
      batchUserFactory({ id: 3, after: {}, offboardedAt: '2026-11-20T10:00:00Z', offboardingInBatch: true }),
      batchUserFactory({ id: 4, after: { security: true, data: true } }),
      batchUserFactory({ id: 6, after: { backend: true } }),
    ];
    const actual = actualFactory({
      'core/api/server': { 2: 'write', 3: 'read', 6: 'manage', 7: 'read' },
      'core/api/worker': { 3: 'write' },
      'data/etl/jobs': { 3: 'write' },
      tools: { 2: 'read', 3: 'read' },
    });
    const expected = plan({ users, policy, actual, now });
    const shuffle = <T>(items: T[]) =>
      fc.shuffledSubarray(items, { minLength: items.length, maxLength: items.length });
    const access = [...actual.entries()];

    // Act / Assess
    fc.assert(
      fc.property(
        shuffle(users),
        shuffle(access),
        fc.array(fc.integer(), { minLength: 4, maxLength: 4 }),
        (shuffledUsers, shuffledAccess, seeds) => {
          const reordered = new Map<string, TargetAccess>(
            shuffledAccess.map(([key, value], index) => {
              const rotate = (seeds[index] ?? 0) % Math.max(1, value.users.length);
              const rotated = [...value.users.slice(rotate), ...value.users.slice(0, rotate)];
              return [key, { ...value, users: rotated }];
            }),
          );
          expect(plan({ users: shuffledUsers, policy, actual: reordered, now })).toEqual(expected);
        },
      ),
      { numRuns: 100 },
    );
    expect(expected.calls.length).toBeGreaterThan(4);
  });
});

describe('touchedTargets', () => {
  it.each([
    {
      name: 'teams of the record after the batch',
      users: [batchUserFactory({ id: 1, after: { platform: true } })],
      expected: ['core/api/server', 'tools'],
    },
    {
      name: 'teams only in the record before (removed) are still checked',
      users: [batchUserFactory({ id: 1, before: { data: true }, after: {} })],
      expected: ['data/etl/jobs'],
    },
    {
      name: 'teams with member=false stay touched',
      users: [batchUserFactory({ id: 1, after: { data: false, backend: true } })],
      expected: ['core/api/server', 'core/api/worker', 'data/etl/jobs'],
    },
    {
      name: 'offboarding in the batch touches every policy target',
      users: [batchUserFactory({ id: 1, after: { platform: true }, offboardingInBatch: true })],
      expected: allTargets,
    },
    {
      name: 'a tombstone without current team touches every policy target',
      users: [batchUserFactory({ id: 1, after: {}, offboardedAt: '2026-11-01T00:00:00Z' })],
      expected: allTargets,
    },
    {
      name: 'a tombstone with a rehire touches only its teams',
      users: [batchUserFactory({ id: 1, after: { data: true }, offboardedAt: '2026-11-01T00:00:00Z' })],
      expected: ['data/etl/jobs'],
    },
    {
      name: 'unknown teams touch nothing, inherited names included',
      users: [batchUserFactory({ id: 1, after: { marketing: true, constructor: true, toString: true } })],
      expected: [],
    },
    {
      name: 'several users: deduplicated, namespaces before repositories, then by key',
      users: [
        batchUserFactory({ id: 2, after: { data: true, backend: true } }),
        batchUserFactory({ id: 1, after: { platform: true, backend: true } }),
      ],
      expected: ['tools', 'core/api/server', 'core/api/worker', 'data/etl/jobs'],
    },
  ])('$name', ({ users, expected }) => {
    // Act
    const targets = touchedTargets(users, policy);

    // Assess
    const namespacesFirst = [...expected].sort((a, b) => Number(a.includes('/')) - Number(b.includes('/')));
    expect(targets.map(targetKey)).toEqual(namespacesFirst);
  });
});

describe('plan: why each change (the audit trail answers "why")', () => {
  const reasonOf = (result: Plan) =>
    result.calls.flatMap((call) => call.changes.map((change) => change.reason));

  it.each<{
    name: string;
    user: BatchUser;
    actual: Record<string, Record<number, PermissionName>>;
    expected: unknown;
  }>([
    {
      name: 'events of the batch, with their types',
      user: {
        ...batchUserFactory({ id: 1, after: { data: true } }),
        eventTypes: { 'e-1': 'membership.added' as const },
      },
      actual: { 'data/etl/jobs': {} },
      expected: { kind: 'events', detail: 'e-1 (membership.added)' },
    },
    {
      name: 'an offboarding',
      user: batchUserFactory({
        id: 1,
        before: { data: true },
        after: { data: false },
        offboardedAt: '2026-11-20T09:00:00Z',
      }),
      actual: { 'data/etl/jobs': { 1: 'write' } },
      expected: { kind: 'offboarding', detail: 'offboarded at 2026-11-20T09:00:00Z' },
    },
    {
      name: 'a membership that expired',
      user: {
        ...batchUserFactory({ id: 1, before: { data: true }, after: { data: false } }),
        expiredTeams: { data: '2026-11-20T09:30:00Z' },
      },
      actual: { 'data/etl/jobs': { 1: 'write' } },
      expected: { kind: 'expiry', detail: 'membership of team data expired at 2026-11-20T09:30:00Z' },
    },
    {
      name: 'a grant no team of a known user gives (reconcile)',
      user: {
        ...batchUserFactory({ id: 1, after: { data: true }, eventIds: [] }),
        extraTargets: [{ kind: 'namespace' as const, namespace: 'tools' }],
      },
      actual: { 'data/etl/jobs': { 1: 'write' }, tools: { 1: 'read' } },
      expected: {
        kind: 'not-in-policy',
        detail: 'no team of the user gives this target in the policy (SWR had read)',
      },
    },
    {
      name: 'drift: SWR lacks what the teams give (reconcile)',
      user: batchUserFactory({ id: 1, after: { data: true }, eventIds: [] }),
      actual: { 'data/etl/jobs': {} },
      expected: { kind: 'drift', detail: "the user's teams give write here; SWR had none" },
    },
    {
      name: 'a stranger on an exclusive target (reconcile)',
      user: {
        ...batchUserFactory({ id: 1, after: {}, eventIds: [] }),
        unknownHolder: true,
        extraTargets: [{ kind: 'namespace' as const, namespace: 'tools' }],
      },
      actual: { tools: { 1: 'read' } },
      expected: {
        kind: 'hand-made-on-exclusive',
        detail: 'a grant made by hand on an exclusive target, to a user the service does not know',
      },
    },
  ])('$name', ({ user, actual, expected }) => {
    // Act
    const result = plan({ users: [user], policy, actual: actualFactory(actual), now });

    // Assess
    expect(reasonOf(result)).toEqual([expected]);
  });

  it('leaves out a user whose name SWR would refuse for a grant, but still revokes them by id', () => {
    // Prepare
    const joining = { ...batchUserFactory({ id: 1, after: { data: true } }), userName: ' padded' };
    const leaving = {
      ...batchUserFactory({ id: 2, before: { data: true }, after: { data: false } }),
      userName: ' padded',
    };

    // Act
    const result = plan({
      users: [joining, leaving],
      policy,
      actual: actualFactory({ 'data/etl/jobs': { 2: 'write' } }),
      now,
    });

    // Assess
    expect(result.rejected).toEqual([
      {
        userId: userId(1),
        target: { kind: 'repo', namespace: 'data', repository: 'etl/jobs' },
        messageIds: ['m-1'],
        rule: 'must not start or end with whitespace',
      },
    ]);
    expect(summarize(result)).toEqual(['revoke data/etl/jobs 2']);
  });

  it('plans only the targets in its scope', () => {
    // Prepare
    const user = batchUserFactory({ id: 1, after: { platform: true } });

    // Act
    const result = plan({
      users: [user],
      policy,
      actual: actualFactory({ 'core/api/server': {}, tools: {} }),
      now,
      scope: new Set(['tools']),
    });

    // Assess
    expect(summarize(result)).toEqual(['grant tools 1:1']);
    expect(result.skipped).toEqual([]);
  });
});

/**
 * Okta Event Hooks translated into our events: the documented System Log samples, what is skipped
 * and why, the suspension setting, and what happens when IAM cannot answer in time.
 */
import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../lib/core/policy-yaml.ts';
import { createOktaHook, readDelivery, type SuspendAction } from '../../lib/intake/okta.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import { fixedDirectory, oktaDelivery, oktaEvent, sample } from '../support/intake.ts';

const policy = parsePolicy(
  [
    'version: 1',
    'identity: { iamName: emailLocalPart, lowercase: true }',
    'teams:',
    '  data:',
    '    idpGroups: [test1, "Data Engineers"]',
    '    grants: [{ namespace: data, repository: etl/jobs, permission: write }]',
    '  analysts:',
    '    idpGroups: ["Data Engineers"]',
    '    grants: [{ namespace: data, permission: read }]',
  ].join('\n'),
  'okta-test.yaml',
);

const test = { id: '0c1a000000000000000000000000c003', name: 'test' };
const leaver = { id: '0c1a000000000000000000000000c004', name: 'johndoet' };

const setup = (suspend: SuspendAction = 'offboard') => {
  const iam = fixedDirectory([test, leaver]);
  const telemetry = createMemoryTelemetry();
  const hook = createOktaHook({
    directory: iam.directory,
    policy,
    log: telemetry.log,
    metrics: telemetry.metrics,
    suspend,
  });
  const translate = (delivery: unknown) =>
    hook.translate(readDelivery(delivery) ?? [], { deadline: Date.now() + 2_000 });
  return { iam, telemetry, hook, translate };
};

const recent = (minutesAgo: number) => new Date(Date.now() - minutesAgo * 60_000).toISOString();

describe('Okta hook deliveries', () => {
  it('turns group.user_membership.add into a join of every team of the group, at published, id from uuid', async () => {
    // Prepare
    const { translate } = setup();
    const event = oktaEvent('okta-hook-membership-add.json', { published: recent(5) });

    // Act
    const outcomes = await translate(oktaDelivery([event]));

    // Assess
    expect(outcomes).toEqual([
      {
        uuid: 'db8e9dda-62d2-458c-a311-9e18eec59c8e',
        kind: 'events',
        events: [
          {
            event: {
              id: expect.stringMatching(/^okta-db8e9dda-62d2-458c-a311-9e18eec59c8e-[0-9a-f]{16}$/),
              type: 'membership.added',
              occurredAt: event.published,
              source: 'okta-hook',
              user: test,
              team: 'data',
            },
            dedupId: expect.stringMatching(/^okta-db8e9dda/),
          },
        ],
      },
    ]);
  });

  it('gives one event per team, with distinct ids, for a group several teams list', async () => {
    // Prepare
    const { translate } = setup();
    const event = oktaEvent('okta-hook-membership-add.json', {
      published: recent(5),
      eventType: 'group.user_membership.remove',
    });
    (event.target as Array<Record<string, unknown>>)[1] = {
      id: '00g2',
      type: 'UserGroup',
      displayName: 'Data Engineers',
    };

    // Act
    const [outcome] = await translate(oktaDelivery([event]));

    // Assess
    expect(outcome?.kind).toBe('events');
    const events = outcome?.kind === 'events' ? outcome.events.map((item) => item.event) : [];
    expect(events.map((item) => [item.type, 'team' in item ? item.team : undefined])).toEqual([
      ['membership.removed', 'analysts'],
      ['membership.removed', 'data'],
    ]);
    expect(new Set(events.map((item) => item.id)).size).toBe(2);
  });

  it('offboards on user.lifecycle.deactivate (the documented sample)', async () => {
    // Prepare
    const { translate } = setup();

    // Act
    const [outcome] = await translate(sample('okta-hook-deactivate.json'));

    // Assess
    expect(outcome).toMatchObject({
      kind: 'events',
      events: [
        { event: { id: 'okta-ab62c0bc-2837-11eb-9823-9fb8f750c5a9', type: 'user.offboarded', user: leaver } },
      ],
    });
  });

  it.each([
    ['offboard', 'events'],
    ['ignore', 'skipped'],
  ] as const)('with OKTA_SUSPEND_ACTION=%s, a suspension is %s', async (suspend, kind) => {
    // Prepare
    const { translate } = setup(suspend);
    const event = oktaEvent('okta-hook-deactivate.json', {
      eventType: 'user.lifecycle.suspend',
      uuid: 'susp-1',
    });

    // Act
    const [outcome] = await translate(oktaDelivery([event]));

    // Assess
    expect(outcome?.kind).toBe(kind);
  });

  it.each([
    [
      'a null target (a delivery captured from a developer org)',
      sample('okta-hook-null-target.json'),
      'no User and UserGroup target',
    ],
    [
      'a failed outcome',
      oktaDelivery([
        oktaEvent('okta-hook-membership-add.json', { outcome: { result: 'FAILURE', reason: 'x' } }),
      ]),
      'outcome FAILURE',
    ],
    [
      'an event type we do not act on',
      oktaDelivery([oktaEvent('okta-hook-membership-add.json', { eventType: 'user.session.start' })]),
      'event type user.session.start',
    ],
    ['not a System Log event', oktaDelivery([{ hello: 'world' }]), 'not a System Log event'],
    [
      'a group no team names',
      oktaDelivery([
        oktaEvent('okta-hook-membership-add.json', {
          target: [
            { id: '00u1', type: 'User', alternateId: 'test@this.com' },
            { id: '00g9', type: 'UserGroup', displayName: 'Marketing' },
          ],
        }),
      ]),
      'group "Marketing" gives no team',
    ],
    [
      'a user IAM does not know',
      oktaDelivery([
        oktaEvent('okta-hook-membership-add.json', {
          target: [
            { id: '00u1', type: 'User', alternateId: 'ghost@this.com' },
            { id: '00g1', type: 'UserGroup', displayName: 'test1' },
          ],
        }),
      ]),
      'IAM knows no user named "ghost"',
    ],
  ])('skips %s, saying why', async (_name, delivery, reason) => {
    // Prepare
    const { translate, hook, telemetry } = setup();

    // Act
    const outcomes = await translate(delivery);
    hook.report(outcomes);

    // Assess
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ kind: 'skipped', reason: expect.stringContaining(reason) });
    expect(telemetry.lines.map((line) => line.message)).toContain('intake: Okta event not acted on');
  });

  it('counts unknown groups and unmapped users as metrics', async () => {
    // Prepare
    const { translate, telemetry } = setup();
    const user = { id: '00u1', type: 'User', alternateId: 'ghost@this.com' };

    // Act
    await translate(
      oktaDelivery([
        oktaEvent('okta-hook-membership-add.json', {
          uuid: 'a',
          target: [user, { type: 'UserGroup', displayName: 'X' }],
        }),
        oktaEvent('okta-hook-membership-add.json', {
          uuid: 'b',
          target: [user, { type: 'UserGroup', displayName: 'test1' }],
        }),
      ]),
    );

    // Assess
    expect(telemetry.counters.get(MetricNames.intakeUnknownGroups)).toBe(1);
    expect(telemetry.counters.get(MetricNames.intakeUnmappedUsers)).toBe(1);
  });

  it('keeps one of each uuid in a delivery', async () => {
    // Prepare
    const { translate } = setup();
    const event = oktaEvent('okta-hook-membership-add.json', { published: recent(1) });

    // Act
    const outcomes = await translate(oktaDelivery([event, event, { ...event }]));

    // Assess
    expect(outcomes).toHaveLength(1);
  });

  it('names the user by mapped IAM name when IAM cannot be read in time (the queue handler resolves it)', async () => {
    // Prepare
    const { translate, iam } = setup();
    iam.setDown(true);

    // Act
    const [outcome] = await translate(sample('okta-hook-deactivate.json'));

    // Assess
    expect(outcome).toMatchObject({
      kind: 'events',
      events: [{ event: { type: 'user.offboarded', user: { name: 'johndoet' } } }],
    });
    expect(outcome?.kind === 'events' ? outcome.events[0]?.event.user : undefined).toEqual({
      name: 'johndoet',
    });
  });

  it('skips an event published more than a day in the future (a wrong clock would win every race)', async () => {
    // Prepare
    const { translate } = setup();
    const event = oktaEvent('okta-hook-deactivate.json', {
      published: new Date(Date.now() + 3 * 86_400_000).toISOString(),
    });

    // Act
    const [outcome] = await translate(oktaDelivery([event]));

    // Assess
    expect(outcome).toMatchObject({ kind: 'skipped', reason: expect.stringContaining('occurredAt') });
  });

  it.each([
    ['a body without data.events', { events: [] }],
    ['events that are not a list', { data: { events: {} } }],
    ['nothing', null],
  ])('reads %s as no delivery', (_name, body) => {
    // Act
    const events = readDelivery(body);

    // Assess
    expect(events).toBeUndefined();
  });
});

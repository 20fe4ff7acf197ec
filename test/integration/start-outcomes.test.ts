/**
 * `npm start`'s summary of every event, on the real local stack: each kind of outcome once, and
 * several dead letters of one user IAM does not know, all of which must be listed (reading a FIFO
 * DLQ without removing shows one message per group; the summary reads the DLQs to the end).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitEventsText } from '../../lib/events-file.ts';
import { eventOutcomes, OutcomeKinds, outcomeCounts } from '../../lib/local/outcomes.ts';
import { type LocalStack, startLocalStack } from '../../lib/local/stack.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { demoUsers } from '../support/stack.ts';

const drainMs = 45_000;

describe("npm start's outcome of every event", () => {
  let stack: LocalStack;
  const telemetry = createMemoryTelemetry();

  beforeAll(async () => {
    stack = await startLocalStack({
      log: telemetry.log,
      metrics: telemetry.metrics,
      retryVisibilitySeconds: 1,
    });
  });

  afterAll(async () => {
    await stack?.stop();
  });

  it('lists applied, stale, duplicate, deferred, superseded and every dead letter, in file order', async () => {
    // Prepare
    const hour = 3_600_000;
    const at = (offset: number) => new Date(Math.floor(Date.now() / hour) * hour + offset).toISOString();
    const { alice, bob, erin } = demoUsers;
    const lines = [
      { id: 'o-1', type: 'membership.added', occurredAt: at(-5 * hour), user: alice, team: 'platform' },
      // Older than o-1 for the same user and team: stale.
      { id: 'o-2', type: 'membership.removed', occurredAt: at(-6 * hour), user: alice, team: 'platform' },
      // The same event id again: the store ignores it (a standard queue delivers both copies).
      { id: 'o-1', type: 'membership.added', occurredAt: at(-5 * hour), user: alice, team: 'platform' },
      // A leaver's last day, next week: deferred.
      {
        id: 'o-3',
        type: 'membership.removed',
        occurredAt: at(-hour),
        effectiveAt: at(7 * 24 * hour),
        user: bob,
        team: 'backend',
      },
      { id: 'o-4', type: 'user.offboarded', occurredAt: at(-2 * hour), user: erin },
      // Older than erin's offboarding: superseded.
      { id: 'o-5', type: 'membership.added', occurredAt: at(-3 * hour), user: erin, team: 'data' },
      // Three dead letters of one FIFO group (one unknown user).
      { id: 'o-6', type: 'membership.added', occurredAt: at(-hour), user: { name: 'mallory' }, team: 'sre' },
      { id: 'o-7', type: 'membership.added', occurredAt: at(-hour), user: { name: 'mallory' }, team: 'data' },
      {
        id: 'o-8',
        type: 'membership.removed',
        occurredAt: at(-hour),
        user: { name: 'mallory' },
        team: 'sre',
      },
    ].map((event) => JSON.stringify(event));
    const { entries } = splitEventsText([...lines, 'not json at all'].join('\n'));

    // Act
    // The offboarding and alice's join first: access-changes is a standard queue (no order between
    // messages; the store orders facts by their instants), so what must be stored before the
    // stale and superseded facts arrive is sent, and drained, first.
    const first = entries.filter(
      (entry) => entry.body.includes('"user.offboarded"') || entry.label === 'line 1',
    );
    await stack.send(first.map((entry) => entry.body));
    await stack.drain({ timeoutMs: drainMs });
    await stack.send(entries.filter((entry) => !first.includes(entry)).map((entry) => entry.body));
    await stack.drain({ timeoutMs: drainMs });
    const letters = await stack.deadLetters({ remove: true });
    const outcomes = eventOutcomes(entries, telemetry.lines, letters);

    // Assess
    expect(outcomes.map((outcome) => [outcome.label, outcome.outcome])).toEqual([
      ['line 1', OutcomeKinds.applied],
      ['line 2', OutcomeKinds.stale],
      ['line 3', OutcomeKinds.duplicate],
      ['line 4', OutcomeKinds.deferred],
      ['line 5', OutcomeKinds.applied],
      ['line 6', OutcomeKinds.superseded],
      ['line 7', OutcomeKinds.deadLettered],
      ['line 8', OutcomeKinds.deadLettered],
      ['line 9', OutcomeKinds.deadLettered],
      ['line 10', OutcomeKinds.deadLettered],
    ]);
    expect(letters).toHaveLength(4);
    expect(outcomes[6]?.detail).toMatch(/^UNKNOWN_USER: .*mallory.* \[accessChanges DLQ\]$/);
    expect(outcomes[9]?.detail).toMatch(/^INVALID_JSON: /);
    expect(outcomes[0]?.detail).toMatch(/^[1-9]\d* SWR changes?$/);
    // erin's sweep ran from the sweep queue's poller, after her message was acknowledged.
    expect(outcomes[4]?.detail).toMatch(/; sweep proven \(\d+ targets checked\)$/);
    expect(outcomeCounts(outcomes)).toBe(
      '2 applied, 1 ignored as stale, 1 duplicate, 1 deferred, 1 superseded by offboarding, 4 dead-lettered',
    );
    expect(await stack.deadLetters()).toEqual([]);
  }, 90_000);

  it('tells an offboarding whose sweep was dead-lettered apart from one applied', () => {
    // Prepare
    const { erin, bob } = demoUsers;
    const bodies = [
      { id: 'x-1', type: 'user.offboarded', occurredAt: '2026-11-20T10:00:00Z', user: erin },
      { id: 'x-2', type: 'user.offboarded', occurredAt: '2026-11-20T10:00:00Z', user: bob },
    ].map((event) => JSON.stringify(event));
    const { entries } = splitEventsText(bodies.join('\n'));
    const letters = [
      {
        queue: 'offboardingSweeps' as const,
        messageId: 'm-1',
        body: JSON.stringify({
          kind: 'offboarding.sweep',
          userId: erin.id,
          offboardedAt: '2026-11-20T10:00:00Z',
        }),
        attributes: { errorCode: 'SVCSTG.SWR.4090023', errorMessage: 'system busy' },
      },
    ];
    const lines = [{ level: 'INFO', message: 'offboarding proven', userId: bob.id, checked: 12 }];

    // Act
    const outcomes = eventOutcomes(entries, lines, letters);

    // Assess
    expect(outcomes.map((outcome) => outcome.outcome)).toEqual([
      OutcomeKinds.sweepDeadLettered,
      OutcomeKinds.applied,
    ]);
    expect(outcomes[0]?.detail).toMatch(/sweep: SVCSTG.SWR.4090023: system busy \[offboardingSweeps DLQ\]$/);
    expect(outcomes[1]?.detail).toMatch(/sweep proven \(12 targets checked\)$/);
  });
});

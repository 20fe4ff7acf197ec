import { describe, expect, it } from 'vitest';
import { checkMassRevoke, formatShare } from '../../lib/reconcile/guard.ts';

const limits = { maxCount: 50, maxShare: 0.2, floor: 0 };

describe('checkMassRevoke', () => {
  it.each([
    { revokes: 0, found: 0, allow: false, status: 'ok' },
    { revokes: 50, found: 1000, allow: false, status: 'ok' },
    { revokes: 51, found: 1000, allow: false, status: 'blocked' },
    { revokes: 20, found: 100, allow: false, status: 'ok' },
    { revokes: 21, found: 100, allow: false, status: 'blocked' },
    { revokes: 1, found: 3, allow: false, status: 'blocked' },
    { revokes: 51, found: 1000, allow: true, status: 'overridden' },
    { revokes: 3, found: 0, allow: false, status: 'ok' },
  ])('$revokes of $found (allow: $allow) is $status', ({ revokes, found, allow, status }) => {
    // Act
    const guard = checkMassRevoke({ revokes, found }, limits, allow);

    // Assess
    expect(guard.status).toBe(status);
    expect(guard).toMatchObject({ revokes, found, ...limits });
    expect(guard.reason === undefined).toBe(status === 'ok');
  });

  it('names every limit that was crossed', () => {
    // Act
    const guard = checkMassRevoke({ revokes: 60, found: 100 }, limits, false);

    // Assess
    expect(guard.reason).toMatch(
      /^60 revocations exceed the limit of 50; 60 of 100 grants \(60%\) exceed the limit of 20%\. /,
    );
    expect(guard.share).toBeCloseTo(0.6);
  });

  it('tells how to override with the flag the CLI really has', () => {
    // Act
    const guard = checkMassRevoke({ revokes: 60, found: 100 }, limits, false);

    // Assess
    expect(guard.reason).toContain('swr-access reconcile --allow-mass-revoke');
    expect(guard.reason).toContain('{"allowMassRevoke": true}');
  });

  it.each([
    { revokes: 4, found: 15, floor: 10, status: 'ok' },
    { revokes: 10, found: 15, floor: 10, status: 'ok' },
    { revokes: 11, found: 15, floor: 10, status: 'blocked' },
  ])(
    'below the floor a share never blocks: $revokes of $found, floor $floor → $status',
    ({ revokes, found, floor, status }) => {
      // Act
      const guard = checkMassRevoke({ revokes, found }, { maxCount: 50, maxShare: 0.2, floor }, false);

      // Assess
      expect(guard.status).toBe(status);
    },
  );

  it('counts revocations a person decided apart: 40 expiries and offboardings never block', () => {
    // Act
    const guard = checkMassRevoke({ revokes: 2, decided: 40, found: 100 }, limits, false);

    // Assess
    expect(guard).toMatchObject({ status: 'ok', revokes: 2, decided: 40 });
  });

  it('uses a floor of 10 when none is configured', () => {
    // Act
    const guard = checkMassRevoke({ revokes: 4, found: 15 }, { maxCount: 50, maxShare: 0.2 }, false);

    // Assess: the routine contractor expiry of a small account (4 of 15, 26.7%) passes.
    expect(guard).toMatchObject({ status: 'ok', floor: 10 });
  });
});

describe('formatShare', () => {
  it.each([
    [0.2, '20%'],
    [1 / 12, '8.3%'],
    [0, '0%'],
    [1, '100%'],
  ])('%d is %s', (share, text) => {
    // Act + Assess
    expect(formatShare(share)).toBe(text);
  });
});

import { describe, expect, it } from 'vitest';
import type { Target, TargetAccess } from '../../lib/domain.ts';
import { targetKey } from '../../lib/domain.ts';
import { SyncError } from '../../lib/errors.ts';
import { createMemoryTelemetry } from '../../lib/observability.ts';
import { type ReconcileOptions, runReconcile } from '../../lib/reconcile/reconcile.ts';
import { formatReconcileTable, reconcileSummary } from '../../lib/reconcile/report.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { grant, userId, userRecordFactory } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';

const now = new Date('2026-11-21T03:00:00Z');

class ReadFailingSwr extends FakeSwr {
  readonly readFailures = new Map<string, Error>();

  override async getAccess(target: Target): Promise<TargetAccess> {
    const failure = this.readFailures.get(targetKey(target));
    if (failure !== undefined) throw failure;
    return super.getAccess(target);
  }
}

/** A run over three targets: one fixed, one unreadable, one in sync. */
const reportFactory = async (options: Partial<ReconcileOptions> = {}) => {
  const swr = new ReadFailingSwr();
  swr.state.set('tools', new Map([[userId(9), { user_id: userId(9), user_name: 'user9', auth: 1 }]]));
  swr.readFailures.set(
    'data/etl/jobs',
    new SyncError('GET timed out', { code: 'TIMEOUT', retryable: true, target: 'data/etl/jobs' }),
  );
  const telemetry = createMemoryTelemetry();
  return runReconcile(
    {
      swr,
      store: createMemoryStore({ initial: [userRecordFactory({ id: 1, teams: { platform: true } })] }),
      policy: {
        version: 1,
        sourcePath: 'config/policy.yaml',
        protectedUsers: [],
        managedNamespaces: [],
        teams: {
          platform: [grant('core/api/server', 'write'), grant('tools', 'read', true)],
          data: [grant('data/etl/jobs', 'write')],
        },
      },
      log: telemetry.log,
      metrics: telemetry.metrics,
      now: () => now,
    },
    {
      dryRun: false,
      allowMassRevoke: false,
      massRevoke: { maxCount: 50, maxShare: 1 },
      concurrency: 2,
      deadline: Date.now() + 10_000,
      actor: 'cli:reconcile',
      ...options,
    },
  );
};

/** Column starts, from the dashes of the separator line. */
const columnStarts = (separator: string): number[] =>
  [...separator.matchAll(/-+/g)].map((match) => match.index ?? 0);

describe('formatReconcileTable', () => {
  it('prints one aligned row per target, totals, the guard and the duration', async () => {
    // Prepare
    const report = await reportFactory();

    // Act
    const text = formatReconcileTable(report);

    // Assess
    const lines = text.split('\n');
    expect(lines[0]).toBe(
      'reconcile 2026-11-21T03:00:00.000Z by cli:reconcile (applied), policy config/policy.yaml',
    );
    const separator = lines[2] ?? '';
    const starts = columnStarts(separator);
    expect(starts).toHaveLength(10);
    const table = lines.slice(1, 7);
    for (const line of table)
      for (const start of starts.slice(1)) expect(line.slice(start - 2, start)).toBe('  ');
    expect(lines[1]?.split(/\s+/)).toEqual([
      'TARGET',
      'KIND',
      'EXCL',
      'FOUND',
      'R/W/M',
      'GRANT',
      'CHANGE',
      'REVOKE',
      'FAILED',
      'STATUS',
    ]);
    expect(lines[3]?.split(/\s+/)).toEqual([
      'tools',
      'namespace',
      'yes',
      '1',
      '1/0/0',
      '1',
      '0',
      '1',
      '0',
      'fixed',
    ]);
    expect(lines[4]?.split(/\s+/)).toEqual([
      'core/api/server',
      'repo',
      '0',
      '0/0/0',
      '1',
      '0',
      '0',
      '0',
      'fixed',
    ]);
    expect(lines[5]).toMatch(
      /^data\/etl\/jobs\s+repo\s+-\s+-\s+0\s+0\s+0\s+0\s+skipped: TIMEOUT GET timed out$/,
    );
    expect(lines[6]?.split(/\s+/)).toEqual([
      'TOTAL',
      '(3',
      'targets)',
      '1',
      '2',
      '0',
      '1',
      '0',
      '1',
      'skipped',
    ]);
    expect(text).toContain(
      'guard: ok (1 revocations, 100% of 1 grants, and 0 decided by offboardings or expiries; limits 50 / 100% above 10)',
    );
    expect(text).toContain('duration: 0 ms; NOT OK');
    expect(text).toContain('Only targets in the policy are reconciled');
  });

  it('shows planned counts and says nothing was applied in a dry run', async () => {
    // Prepare
    const report = await reportFactory({ dryRun: true });

    // Act
    const text = formatReconcileTable(report);

    // Assess
    expect(text).toContain('(dry run: counts are planned, nothing was applied)');
    expect(text.split('\n')[3]?.split(/\s+/)).toEqual([
      'tools',
      'namespace',
      'yes',
      '1',
      '1/0/0',
      '1',
      '0',
      '1',
      '0',
      'not',
      'applied',
      '(dry',
      'run)',
    ]);
  });

  it('says the guard blocked the run and how to override it', async () => {
    // Prepare
    const report = await reportFactory({ massRevoke: { maxCount: 0, maxShare: 1 } });

    // Act
    const text = formatReconcileTable(report);

    // Assess
    expect(text).toContain('(blocked: counts are planned, nothing was applied)');
    expect(text).toContain(
      'guard: BLOCKED (nothing was applied): 1 revocations exceed the limit of 0. After checking the plan (reconcile --dry-run), apply it with `swr-access reconcile --allow-mass-revoke`, or invoke the function with {"allowMassRevoke": true}',
    );
    expect(text.split('\n')[3]).toMatch(/not applied \(guard\)$/);
  });
});

describe('reconcileSummary', () => {
  it('lists the targets that need attention', async () => {
    // Prepare
    const report = await reportFactory();

    // Act
    const summary = reconcileSummary(report);

    // Assess
    expect(summary).toMatchObject({ ok: false, skippedTargets: ['data/etl/jobs'], failedTargets: [] });
    expect(summary).not.toHaveProperty('changes');
  });
});

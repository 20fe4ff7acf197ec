import { describe, expect, it, vi } from 'vitest';
import type { Policy } from '../../lib/domain.ts';
import { ConfigError, StoreError, SyncError } from '../../lib/errors.ts';
import { createLambdaContext } from '../../lib/local/lambda-context.ts';
import { createMemoryTelemetry, MetricNames } from '../../lib/observability.ts';
import { createReconcileHandler, handleReconcileEvent, overridesOf } from '../../lib/reconcile/handler.ts';
import type { ReconcileRuntime, ReconcileSettings } from '../../lib/reconcile/runtime.ts';
import { createReconcileRuntime } from '../../lib/reconcile/runtime.ts';
import { createMemoryStore } from '../../lib/store/index.ts';
import { grant, userId, userRecordFactory } from '../support/factories.ts';
import { FakeSwr } from '../support/fake-swr.ts';

const policy: Policy = {
  version: 1,
  sourcePath: 'test/policy.yaml',
  protectedUsers: [],
  managedNamespaces: [],
  teams: { platform: [grant('core/api/server', 'write', true)] },
};

const scheduledEvent = {
  version: '0',
  id: 'c5f7a3c2-0000-4000-8000-000000000000',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  account: '123456789012',
  time: '2026-11-21T03:00:00Z',
  region: 'eu-west-1',
  resources: ['arn:aws:events:eu-west-1:123456789012:rule/reconcile'],
  detail: {},
};

/** A runtime over a FakeSwr where user 1 should get a grant and unknown 9 loses one. */
const runtimeFactory = (settings: Partial<ReconcileSettings> = {}, fail?: Error) => {
  const telemetry = createMemoryTelemetry();
  const swr = new FakeSwr();
  swr.state.set(
    'core/api/server',
    new Map([[userId(9), { user_id: userId(9), user_name: 'user9', auth: 3 }]]),
  );
  const runtime: ReconcileRuntime = {
    log: telemetry.log,
    metrics: { ...telemetry.metrics, flush: vi.fn() },
    ready: async () => {
      if (fail !== undefined) throw fail;
      return {
        deps: {
          swr,
          store: createMemoryStore({ initial: [userRecordFactory({ id: 1, teams: { platform: true } })] }),
          policy,
          log: telemetry.log,
          metrics: telemetry.metrics,
          now: () => new Date(),
        },
        settings: {
          actor: 'reconcile',
          dryRun: false,
          allowMassRevoke: false,
          massRevoke: { maxCount: 0, maxShare: 1 },
          concurrency: 2,
          ...settings,
        },
        safetyMarginMs: 5_000,
      };
    },
  };
  return { runtime, swr, telemetry };
};

describe('overridesOf', () => {
  it.each([
    {
      name: 'a scheduled event',
      event: { ...scheduledEvent, allowMassRevoke: true },
      expected: { dryRun: false, allowMassRevoke: false },
    },
    { name: 'an empty manual event', event: {}, expected: { dryRun: false, allowMassRevoke: false } },
    {
      name: 'a manual override',
      event: { allowMassRevoke: true },
      expected: { dryRun: false, allowMassRevoke: true },
    },
    { name: 'a manual dry run', event: { dryRun: true }, expected: { dryRun: true, allowMassRevoke: false } },
    {
      name: 'a string "true"',
      event: { allowMassRevoke: 'true' },
      expected: { dryRun: false, allowMassRevoke: false },
    },
    { name: 'no object', event: null, expected: { dryRun: false, allowMassRevoke: false } },
  ])('$name gives $expected', ({ event, expected }) => {
    // Act + Assess
    expect(overridesOf(event)).toEqual(expected);
  });
});

describe('handleReconcileEvent', () => {
  it('runs with the deadline of the invocation less the safety margin and answers a summary', async () => {
    // Prepare
    const { runtime, swr } = runtimeFactory({ massRevoke: { maxCount: 5, maxShare: 1 } });
    const before = Date.now();
    const context = createLambdaContext('swr-access-sync-test-reconcile', 30_000);

    // Act
    const summary = await handleReconcileEvent(scheduledEvent, context, runtime);
    const after = Date.now();

    // Assess
    expect(summary).toMatchObject({ ok: true, dryRun: false, skippedTargets: [], failedTargets: [] });
    expect(summary.totals).toMatchObject({ granted: 1, revoked: 1 });
    const deadline = swr.calls[0]?.options?.deadline ?? 0;
    // The handler reads the clock, then the remaining time (which reads it again): a tick between
    // the two moves the deadline 1 ms earlier, the safe side.
    expect(deadline).toBeGreaterThanOrEqual(before + 25_000 - 1);
    expect(deadline).toBeLessThanOrEqual(after + 25_000);
  });

  it.each([
    {
      name: 'a scheduled event cannot override the guard',
      event: { ...scheduledEvent, allowMassRevoke: true },
      calls: 0,
      status: 'blocked',
    },
    { name: 'a manual invocation can', event: { allowMassRevoke: true }, calls: 2, status: 'overridden' },
    {
      name: 'a manual dry run calls nothing',
      event: { dryRun: true, allowMassRevoke: true },
      calls: 0,
      status: 'overridden',
    },
  ])('$name', async ({ event, calls, status }) => {
    // Prepare: the guard allows no revocation at all
    const { runtime, swr } = runtimeFactory();

    // Act
    const summary = await handleReconcileEvent(event, createLambdaContext('reconcile', 30_000), runtime);

    // Assess
    expect(swr.calls).toHaveLength(calls);
    expect(summary.guard.status).toBe(status);
  });

  it('logs and throws when the run cannot start', async () => {
    // Prepare
    const { runtime, telemetry } = runtimeFactory({}, new StoreError('table not reachable'));

    // Act
    const outcome = handleReconcileEvent({}, createLambdaContext('reconcile', 30_000), runtime);

    // Assess
    await expect(outcome).rejects.toBeInstanceOf(StoreError);
    expect(telemetry.lines).toContainEqual(
      expect.objectContaining({
        level: 'ERROR',
        message: 'reconcile could not run',
        errorCode: 'STORE_UNAVAILABLE',
      }),
    );
  });
});

describe('createReconcileHandler', () => {
  it('flushes the metrics of the invocation', async () => {
    // Prepare
    const { runtime, telemetry } = runtimeFactory();
    const handler = createReconcileHandler(runtime);

    // Act
    const summary = await handler(scheduledEvent, createLambdaContext('reconcile', 30_000));

    // Assess
    expect(summary.guard.status).toBe('blocked');
    expect(telemetry.counters.get(MetricNames.massRevokeBlocked)).toBe(1);
    expect(runtime.metrics.flush).toHaveBeenCalledTimes(1);
  });
});

describe('reconcile metrics (what the alarms on errors and skipped targets read)', () => {
  const unreadable = new SyncError('SWR answered 503', { code: 'SVCSTG.SWR.5000001', retryable: true });

  it.each([
    { name: 'a clean run counts zero of each', breakIt: undefined, errors: 0, skipped: 0 },
    {
      name: 'a target that cannot be read is a skipped target',
      breakIt: (swr: FakeSwr) => {
        swr.getAccess = async () => {
          throw unreadable;
        };
      },
      errors: 0,
      skipped: 1,
    },
    {
      name: 'each failed call is an error (a grant and a revoke here)',
      breakIt: (swr: FakeSwr) => {
        swr.failTarget(
          'core/api/server',
          new SyncError('forbidden', { code: 'SVCSTG.SWR.4030001', retryable: false }),
        );
      },
      errors: 2,
      skipped: 0,
    },
  ])('$name', async ({ breakIt, errors, skipped }) => {
    // Prepare
    const { runtime, swr, telemetry } = runtimeFactory({ massRevoke: { maxCount: 5, maxShare: 1 } });
    breakIt?.(swr);

    // Act
    await handleReconcileEvent(scheduledEvent, createLambdaContext('reconcile', 30_000), runtime);

    // Assess
    expect(telemetry.counters.get(MetricNames.reconcileErrors)).toBe(errors);
    expect(telemetry.counters.get(MetricNames.reconcileSkippedTargets)).toBe(skipped);
  });

  it('counts a run that cannot start as one error', async () => {
    // Prepare
    const { runtime, telemetry } = runtimeFactory({}, new StoreError('table not reachable'));

    // Act
    await handleReconcileEvent({}, createLambdaContext('reconcile', 30_000), runtime).catch(() => undefined);

    // Assess
    expect(telemetry.counters.get(MetricNames.reconcileErrors)).toBe(1);
    expect(telemetry.counters.has(MetricNames.reconcileSkippedTargets)).toBe(false);
  });
});

describe('createReconcileRuntime', () => {
  const env = {
    SWR_ENDPOINT: 'http://127.0.0.1:9',
    IAM_ENDPOINT: 'http://127.0.0.1:9',
    SWR_AUTH_TOKEN: 'test-token-not-a-secret',
    TABLE_NAME: 'membership',
    POLICY_FILE: 'config/demo-policy.yaml',
    MASS_REVOKE_MAX_COUNT: '7',
    MASS_REVOKE_MAX_SHARE: '0.5',
    SWR_MAX_CONCURRENCY: '3',
  };

  it('needs the membership table', () => {
    // Act + Assess
    expect(() =>
      createReconcileRuntime({ functionName: 'reconcile', env: { ...env, TABLE_NAME: '' } }),
    ).toThrow(ConfigError);
  });

  it('takes the guard limits and concurrency from the configuration and never allows a mass revoke', async () => {
    // Prepare
    const telemetry = createMemoryTelemetry();
    const runtime = createReconcileRuntime({
      functionName: 'reconcile',
      env,
      log: telemetry.log,
      metrics: telemetry.metrics,
    });

    // Act
    const { settings, safetyMarginMs, deps } = await runtime.ready();

    // Assess
    expect(settings).toEqual({
      actor: 'reconcile',
      dryRun: false,
      allowMassRevoke: false,
      massRevoke: { maxCount: 7, maxShare: 0.5, floor: 10 },
      concurrency: 3,
    });
    expect(safetyMarginMs).toBe(5_000);
    expect(Object.keys(deps.policy.teams)).toContain('platform');
    expect(await runtime.ready()).toBe(await runtime.ready());
  });
});

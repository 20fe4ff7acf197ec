import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  auditLogAttributes,
  createPowertoolsMetrics,
  functionDimensionOf,
  MetricNames,
  metricDimensionNames,
} from '../../lib/observability.ts';

/** Runs `act` and returns the EMF documents Powertools wrote on stdout meanwhile. */
const captureEmf = (act: () => void): Array<Record<string, unknown>> => {
  const written: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  try {
    act();
  } finally {
    spy.mockRestore();
  }
  return written
    .join('')
    .split('\n')
    .filter((text) => text.startsWith('{'))
    .map((text) => JSON.parse(text) as Record<string, unknown>);
};

afterEach(() => {
  vi.restoreAllMocks();
});

describe('Powertools metrics', () => {
  it('carry exactly the dimensions service and function, with their values', () => {
    // Prepare
    const metrics = createPowertoolsMetrics('swr-access-sync', { functionName: 'swr-access-sync-prod-sync' });

    // Act
    const [emf] = captureEmf(() => {
      metrics.count(MetricNames.grants, 2);
      metrics.count(MetricNames.deadLettered);
      metrics.flush();
    });

    // Assess
    const aws = emf?._aws as { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][] }> };
    expect(aws.CloudWatchMetrics[0]?.Namespace).toBe('SwrAccessSync');
    expect(aws.CloudWatchMetrics[0]?.Dimensions).toEqual([[...metricDimensionNames]]);
    expect(emf).toMatchObject({
      service: 'swr-access-sync',
      function: 'swr-access-sync-prod-sync',
      Grants: 2,
      DeadLettered: 1,
    });
  });
});

describe('functionDimensionOf', () => {
  it.each([
    [
      'in Lambda, the deployed function name',
      { AWS_LAMBDA_FUNCTION_NAME: 'swr-access-sync-prod-sync' },
      'swr-access-sync-prod-sync',
    ],
    ['elsewhere, the short name', {}, 'sync'],
    ['a blank variable counts as unset', { AWS_LAMBDA_FUNCTION_NAME: ' ' }, 'sync'],
  ])('%s', (_case, env, expected) => {
    // Act
    const value = functionDimensionOf('sync', env);

    // Assess
    expect(value).toBe(expected);
  });
});

describe('auditLogAttributes', () => {
  const record = {
    at: '2026-11-20T10:00:00.000Z',
    actor: 'reconcile',
    eventIds: [],
    sources: [],
    userId: 'a11ce000000000000000000000000001',
    userName: 'alice',
    target: { kind: 'repo' as const, namespace: 'core', repository: 'api/server' },
    before: 3 as const,
    after: undefined,
    dryRun: false,
  };

  it.each([
    [
      'carries the reason when there is one',
      { ...record, reason: 'membership expired' },
      'membership expired',
    ],
    ['leaves it out when there is none', record, undefined],
  ])('%s', (_case, input, reason) => {
    // Act
    const attributes = auditLogAttributes(input);

    // Assess
    expect(attributes.reason).toBe(reason);
    expect(attributes).toMatchObject({ target: 'core/api/server', before: 'write', after: 'none' });
  });
});

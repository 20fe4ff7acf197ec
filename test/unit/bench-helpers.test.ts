import { describe, expect, it } from 'vitest';
import { BenchUsageError, fullSizes, parseBenchArgs, quickSizes } from '../../bench/args.ts';
import { classifyCounts, countsSince } from '../../bench/counts.ts';
import { addFloors, floorOf } from '../../bench/floor.ts';
import { median, percentile, ratio, summarize } from '../../bench/stats.ts';
import { formatNumber, type ResultRow, renderMarkdown, renderText } from '../../bench/table.ts';
import type { PermissionMap } from '../../bench/workload.ts';

const rowFactory = (overrides: Partial<ResultRow> = {}): ResultRow => ({
  section: 'calls',
  metric: 'writes per event',
  unit: '',
  ours: 2,
  baseline: 8,
  baselineLabel: 'naive',
  ...overrides,
});

const permissions = (
  repos: PermissionMap['repos'],
  namespaces: PermissionMap['namespaces'] = {},
): PermissionMap => ({
  repos,
  namespaces,
});

describe('percentile', () => {
  it.each([
    [[1, 2, 3, 4], 50, 2.5],
    [[4, 1, 3, 2], 0, 1],
    [[4, 1, 3, 2], 100, 4],
    [[10, 20, 30, 40, 50], 95, 48],
    [[7], 99, 7],
  ])('percentile(%j, %i) is %d', (values, p, expected) => {
    // Act
    const result = percentile(values, p);

    // Assess
    expect(result).toBeCloseTo(expected, 10);
  });

  it('is NaN for no values and refuses a p outside 0–100', () => {
    // Act / Assess
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile([1], 101)).toThrow(RangeError);
  });

  it('does not reorder the caller’s array', () => {
    // Prepare
    const values = [3, 1, 2];

    // Act
    median(values);

    // Assess
    expect(values).toEqual([3, 1, 2]);
  });

  it('summarizes', () => {
    // Act
    const summary = summarize([30, 10, 20]);

    // Assess
    expect(summary).toMatchObject({ n: 3, min: 10, p50: 20, max: 30, mean: 20 });
  });
});

describe('ratio', () => {
  it.each([
    [30, 120, 0.25],
    [5, 0, null],
    [Number.NaN, 2, null],
  ])('ratio(%d, %d) is %s', (measured, baseline, expected) => {
    // Act / Assess
    expect(ratio(measured, baseline)).toBe(expected);
  });
});

describe('table', () => {
  it.each([
    [12345.6, '12,346'],
    [3, '3'],
    [4.084, '4.08'],
    [0.5, '0.5'],
    [0.01234, '0.0123'],
    [Number.NaN, 'n/a'],
  ])('formats %d as %s', (value, expected) => {
    // Act / Assess
    expect(formatNumber(value)).toBe(expected);
  });

  it('renders a Markdown row with both figures and their ratio, pipes escaped', () => {
    // Prepare
    const rows = [rowFactory({ note: 'a|b' })];

    // Act
    const markdown = renderMarkdown(rows).split('\n');

    // Assess
    expect(markdown).toHaveLength(3);
    expect(markdown[1]).toBe('|---|---|---:|---:|---:|---|');
    expect(markdown[2]).toBe('| calls | writes per event | 2 | 8 | 0.25× | naive; a\\|b |');
  });

  it('aligns text columns: every line of the text table has the same column starts', () => {
    // Prepare
    const rows = [rowFactory(), rowFactory({ metric: 'time', unit: 'ms', ours: 12345, baseline: 0 })];

    // Act
    const lines = renderText(rows).split('\n');

    // Assess
    expect(lines).toHaveLength(4);
    expect(lines[3]).toContain('n/a');
    const ratioColumn = (lines[0] ?? '').indexOf('ratio');
    expect(
      (lines[2] ?? '')
        .slice(0, ratioColumn + 19)
        .trimEnd()
        .endsWith('0.25×'),
    ).toBe(true);
  });
});

describe('floorOf', () => {
  it('counts one call per target and action, whatever the number of users', () => {
    // Prepare
    const before = permissions(
      { 'core/a': { u1: 1, u2: 3, u3: 7 }, 'core/b': { u1: 1 } },
      { tools: { u4: 1 } },
    );
    const after = permissions(
      { 'core/a': { u1: 3, u2: 7, u4: 1, u5: 1 }, 'core/b': { u1: 1 } },
      { tools: {} },
    );

    // Act
    const floor = floorOf(before, after);

    // Assess: core/a needs a POST (u4, u5), a PATCH (u1, u2) and a DELETE (u3); tools a DELETE.
    expect(floor).toEqual({ grant: 1, change: 1, revoke: 2, total: 4 });
  });

  it('is zero between equal states and adds up per batch', () => {
    // Prepare
    const state = permissions({ 'core/a': { u1: 1 } });
    const grown = permissions({ 'core/a': { u1: 1, u2: 1 } });

    // Act
    const total = addFloors([floorOf(state, state), floorOf(state, grown), floorOf(grown, state)]);

    // Assess
    expect(total).toEqual({ grant: 1, change: 0, revoke: 1, total: 2 });
  });
});

describe('classifyCounts', () => {
  it('sorts simulator routes into reads, writes, lists and IAM', () => {
    // Prepare
    const counts = {
      'GET /v2/manage/namespaces/{ns}/repos/{repo}/access': 5,
      'GET /v2/manage/namespaces/{ns}/access': 1,
      'POST /v2/manage/namespaces/{ns}/repos/{repo}/access': 2,
      'PATCH /v2/manage/namespaces/{ns}/access': 3,
      'DELETE /v2/manage/namespaces/{ns}/repos/{repo}/access': 4,
      'GET /v2/manage/repos': 6,
      'POST /v3/auth/tokens': 1,
      'GET /v3/users/{id}': 2,
      'GET (unmatched)': 9,
    };

    // Act
    const result = classifyCounts(counts);

    // Assess
    expect(result).toEqual({
      reads: 6,
      post: 2,
      patch: 3,
      delete: 4,
      writes: 9,
      lists: 6,
      iam: 3,
      swr: 21,
      other: 9,
    });
  });

  it('subtracts an earlier reading route by route', () => {
    // Act
    const since = countsSince({ a: 2, b: 1 }, { a: 5, b: 1, c: 3 });

    // Assess
    expect(since).toEqual({ a: 3, c: 3 });
  });
});

describe('parseBenchArgs', () => {
  it('defaults to every scenario at full size', () => {
    // Act
    const options = parseBenchArgs([]);

    // Assess
    expect(options.scenarios).toEqual([
      'calls',
      'quota',
      'throughput',
      'latency',
      'offboarding',
      'coldstart',
      'retry',
      'intake',
    ]);
    expect(options.sizes).toEqual(fullSizes);
    expect(options.out).toBe('bench/results.json');
  });

  it('takes the quick preset, then sizes given on the command line, and a scenario subset in canonical order', () => {
    // Act
    const options = parseBenchArgs([
      '--quick',
      '--events',
      '500',
      '--only',
      'retry,calls',
      '--latency-ms',
      '0',
    ]);

    // Assess
    expect(options.sizes).toEqual({ ...quickSizes, events: 500, latencyMs: 0 });
    expect(options.scenarios).toEqual(['calls', 'retry']);
  });

  it.each([
    [['--events', '0']],
    [['--events', 'many']],
    [['--only', 'calls,warp']],
    [['--flood', '10', '--flood-users', '20']],
    [['--quick', '--quota-naive-events', '301']],
    [['--throughput-events', '50', '--throughput-naive-events', '51']],
    [['--quick', '--latency-samples', '161']],
    [['--quota-rps', '0']],
    [['--bogus']],
    [['--help']],
  ])('refuses %j with a usage error', (argv) => {
    // Act / Assess
    expect(() => parseBenchArgs(argv)).toThrow(BenchUsageError);
  });
});

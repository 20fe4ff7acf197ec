/**
 * Small statistics for the benchmarks: percentiles, summaries and baseline ratios. Pure.
 */

interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

/**
 * The `p`-th percentile (0–100) by linear interpolation between closest ranks (the "type 7"
 * definition of R and NumPy's default), so that p50 of an even count is the mean of the middle
 * two. `NaN` for no values.
 *
 * @example percentile([1, 2, 3, 4], 50) // 2.5
 */
const percentile = (values: readonly number[], p: number): number => {
  if (values.length === 0) return Number.NaN;
  if (p < 0 || p > 100) throw new RangeError(`percentile must be within 0–100, got ${p}`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const lowValue = sorted[low] as number;
  const highValue = sorted[high] as number;
  return lowValue + (highValue - lowValue) * (rank - low);
};

/** @example median([5, 1, 3]) // 3 */
const median = (values: readonly number[]): number => percentile(values, 50);

/**
 * @example summarize([10, 20, 30]).p50 // 20
 */
const summarize = (values: readonly number[]): Summary => ({
  n: values.length,
  min: values.length === 0 ? Number.NaN : Math.min(...values),
  p50: percentile(values, 50),
  p95: percentile(values, 95),
  p99: percentile(values, 99),
  max: values.length === 0 ? Number.NaN : Math.max(...values),
  mean: values.length === 0 ? Number.NaN : values.reduce((sum, value) => sum + value, 0) / values.length,
});

/**
 * `measured / baseline`, or `null` when the baseline is zero or either value is not finite
 * (a ratio to nothing means nothing).
 *
 * @example ratio(30, 120) // 0.25
 */
const ratio = (measured: number, baseline: number): number | null =>
  Number.isFinite(measured) && Number.isFinite(baseline) && baseline !== 0 ? measured / baseline : null;

export type { Summary };
export { median, percentile, ratio, summarize };

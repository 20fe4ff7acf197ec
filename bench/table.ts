/**
 * Renders benchmark rows (a measured figure beside its same-run baseline and their ratio) as a
 * fixed-width text table for the terminal and as a Markdown table for the README. Pure.
 */
import { ratio } from './stats.ts';

/** One figure: ours and the baseline measured in the same run. */
interface ResultRow {
  /** Which benchmark (calls, throughput, …). */
  section: string;
  metric: string;
  unit: string;
  ours: number;
  baseline: number;
  /** What the baseline is, e.g. `naive delete+post`. */
  baselineLabel: string;
  note?: string;
}

/**
 * A number as people read it: integers with thousands separators, others with 3 significant
 * digits (at least 0 decimals, at most 3); `n/a` for a missing value.
 *
 * @example formatNumber(12345.6) // '12,346'
 * @example formatNumber(0.01234) // '0.0123'
 */
const formatNumber = (value: number | null | undefined): string => {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  const abs = Math.abs(value);
  if (Number.isInteger(value) || abs >= 100)
    return Math.round(value).toLocaleString('en-US', { maximumFractionDigits: 0 });
  const digits = abs >= 10 ? 1 : abs >= 1 ? 2 : Math.min(6, 2 - Math.floor(Math.log10(abs || 1)));
  return value.toFixed(digits).replace(/(\.\d*?[1-9])0+$|\.0+$/, '$1');
};

/** `0.25` → `0.25×`; `n/a` when there is no ratio. */
const formatRatio = (value: number | null): string => (value === null ? 'n/a' : `${formatNumber(value)}×`);

const headers = ['benchmark', 'metric', 'ours', 'baseline', 'ratio ours/baseline', 'baseline is'] as const;

const cellsOf = (row: ResultRow): string[] => [
  row.section,
  row.unit === '' ? row.metric : `${row.metric} (${row.unit})`,
  formatNumber(row.ours),
  formatNumber(row.baseline),
  formatRatio(ratio(row.ours, row.baseline)),
  row.note === undefined ? row.baselineLabel : `${row.baselineLabel}; ${row.note}`,
];

/** Numbers right-aligned, text left-aligned. */
const numericColumns = new Set([2, 3, 4]);

/**
 * @example console.log(renderText(rows));
 */
const renderText = (rows: readonly ResultRow[]): string => {
  const table = [headers as readonly string[], ...rows.map(cellsOf)];
  const widths = headers.map((_, column) => Math.max(...table.map((cells) => (cells[column] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) =>
        numericColumns.has(column) ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0),
      )
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(table[0] ?? []), rule, ...table.slice(1).map(line)].join('\n');
};

/** Pipes inside a cell would split it. */
const escapeCell = (cell: string): string => cell.replaceAll('|', '\\|');

/**
 * @example writeFileSync('bench/results.md', renderMarkdown(rows));
 */
const renderMarkdown = (rows: readonly ResultRow[]): string => {
  const line = (cells: readonly string[]) => `| ${cells.map(escapeCell).join(' | ')} |`;
  const align = headers.map((_, column) => (numericColumns.has(column) ? '---:' : '---'));
  return [line(headers), `|${align.join('|')}|`, ...rows.map((row) => line(cellsOf(row)))].join('\n');
};

export type { ResultRow };
export { formatNumber, formatRatio, renderMarkdown, renderText };

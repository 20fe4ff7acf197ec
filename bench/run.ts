/**
 * `npm run bench [-- --quick] [-- --only calls,retry] [-- --events 500 …]`: runs each benchmark in
 * a fresh child process, side by side with its baseline in the same run, prints a table and writes
 * bench/results.json and bench/results.md. See bench/README.md for what each figure means.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchOptions, BenchUsageError, parseBenchArgs, type ScenarioName } from './args.ts';
import { describeMachine, machineInfo } from './machine.ts';
import type { ScenarioResult } from './scenarios/common.ts';
import { combineOffboarding, type OffboardingPart, partNames } from './scenarios/offboarding.ts';
import { type ResultRow, renderMarkdown, renderText } from './table.ts';

const childScript = fileURLToPath(new URL('./child.ts', import.meta.url));
/** A child that runs longer than this is stopped: the bench must end. */
const childTimeoutMs = 20 * 60 * 1000;

/** Runs one scenario (part) in a fresh `node --import tsx` process and reads its result file. */
const runChild = (
  scenario: ScenarioName,
  optionsFile: string,
  workDir: string,
  part?: string,
): Promise<ScenarioResult> =>
  new Promise((resolve, reject) => {
    const outFile = join(workDir, `${scenario}${part === undefined ? '' : `-${part}`}.json`);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', childScript, scenario, optionsFile, outFile, ...(part === undefined ? [] : [part])],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const timer = setTimeout(() => child.kill('SIGKILL'), childTimeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`${scenario}${part === undefined ? '' : `/${part}`} exited with ${signal ?? code}`));
        return;
      }
      try {
        resolve(JSON.parse(readFileSync(outFile, 'utf8')) as ScenarioResult);
      } catch (error) {
        reject(error);
      }
    });
  });

const runScenario = async (
  scenario: ScenarioName,
  optionsFile: string,
  workDir: string,
): Promise<ScenarioResult> => {
  if (scenario !== 'offboarding') return runChild(scenario, optionsFile, workDir);
  const parts: OffboardingPart[] = [];
  for (const part of partNames)
    parts.push((await runChild(scenario, optionsFile, workDir, part)).details.part as OffboardingPart);
  const [baseline, flood, shared] = parts as [OffboardingPart, OffboardingPart, OffboardingPart];
  return combineOffboarding(baseline, flood, shared);
};

const markdownOf = (header: string, rows: readonly ResultRow[], failures: readonly string[]): string =>
  [
    '# Benchmark results',
    '',
    header,
    '',
    renderMarkdown(rows),
    '',
    ...(failures.length === 0
      ? []
      : ['Not measured in this run:', '', ...failures.map((line) => `- ${line}`), '']),
    'Every figure was measured beside its baseline in the same run; "ratio" is ours divided by the baseline.',
    'See bench/README.md for definitions (floor, latency, memory) and how to reproduce.',
    '',
  ].join('\n');

const main = async (options: BenchOptions): Promise<number> => {
  const machine = machineInfo();
  const header = `${describeMachine(machine)}; sizes ${options.quick ? '(quick) ' : ''}${JSON.stringify(options.sizes)}, seed ${options.seed}`;
  process.stdout.write(`${header}\n`);
  const workDir = mkdtempSync(join(tmpdir(), 'swr-bench-run-'));
  const optionsFile = join(workDir, 'options.json');
  writeFileSync(optionsFile, JSON.stringify(options));
  const startedAt = new Date();
  const scenarios: Record<string, ScenarioResult | { error: string }> = {};
  const rows: ResultRow[] = [];
  const failures: string[] = [];
  try {
    for (const scenario of options.scenarios) {
      process.stdout.write(`▶ ${scenario}\n`);
      const began = performance.now();
      try {
        const result = await runScenario(scenario, optionsFile, workDir);
        scenarios[scenario] = result;
        rows.push(...result.rows);
        process.stdout.write(`  done in ${((performance.now() - began) / 1000).toFixed(1)} s\n`);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        scenarios[scenario] = { error: message };
        failures.push(`${scenario}: ${message}`);
        process.stdout.write(`  FAILED: ${message}\n`);
      }
    }
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
  const finishedAt = new Date();
  writeFileSync(
    options.out,
    `${JSON.stringify(
      {
        startedAt: startedAt.toISOString(),
        finishedAt: finishedAt.toISOString(),
        durationMs: finishedAt.getTime() - startedAt.getTime(),
        machine,
        options,
        rows,
        scenarios,
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(options.markdown, markdownOf(header, rows, failures));
  process.stdout.write(`\n${renderText(rows)}\n\n`);
  process.stdout.write(
    `written: ${options.out}, ${options.markdown} (${((finishedAt.getTime() - startedAt.getTime()) / 1000).toFixed(0)} s)\n`,
  );
  return failures.length === 0 ? 0 : 1;
};

try {
  process.exitCode = await main(parseBenchArgs(process.argv.slice(2)));
} catch (error) {
  if (!(error instanceof BenchUsageError)) throw error;
  process.stderr.write(`${error.message}\n`);
  process.exitCode = 2;
}

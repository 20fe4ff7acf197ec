/**
 * Runs ONE scenario in a fresh process (memory and JIT state of one never colour another) and
 * writes its result as JSON to the file named on the command line.
 * Usage (run.ts does it): node --import tsx bench/child.ts <scenario> <options-json-file> <out-file>
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { BenchOptions } from './args.ts';
import { runCallsScenario, runRetryScenario } from './scenarios/calls.ts';
import { runColdStartScenario } from './scenarios/coldstart.ts';
import type { ScenarioResult } from './scenarios/common.ts';
import { runIntakeScenario } from './scenarios/intake.ts';
import { runLatencyScenario } from './scenarios/latency.ts';
import { runOffboardingScenario } from './scenarios/offboarding.ts';
import { runQuotaScenario } from './scenarios/quota.ts';
import { runThroughputScenario } from './scenarios/throughput.ts';

const scenarios: Record<string, (options: BenchOptions, part?: string) => Promise<ScenarioResult>> = {
  calls: runCallsScenario,
  quota: runQuotaScenario,
  retry: runRetryScenario,
  throughput: runThroughputScenario,
  latency: runLatencyScenario,
  offboarding: runOffboardingScenario,
  coldstart: runColdStartScenario,
  intake: runIntakeScenario,
};

const [name = '', optionsFile = '', outFile = '', part] = process.argv.slice(2);
const run = scenarios[name];
if (run === undefined || optionsFile === '' || outFile === '') {
  process.stderr.write(
    `usage: child.ts <${Object.keys(scenarios).join('|')}> <options.json> <out.json> [part]\n`,
  );
  process.exit(2);
}
const options = JSON.parse(readFileSync(optionsFile, 'utf8')) as BenchOptions;
const result = await run(options, part);
writeFileSync(outFile, JSON.stringify(result, null, 2));
// Open handles of a stopped stack (keep-alive sockets) must not keep the child alive.
process.exit(0);

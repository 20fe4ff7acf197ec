/** What every scenario shares: its result shape, the generated world, a policy file on disk. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Log, LogAttributes } from '../../lib/observability.ts';
import type { BenchOptions } from '../args.ts';
import type { ResultRow } from '../table.ts';
import { type BenchWorld, generateWorld } from '../workload.ts';

interface ScenarioResult {
  rows: ResultRow[];
  /** Everything else worth keeping in results.json (raw counts, checks, settings). */
  details: Record<string, unknown>;
}

interface PreparedWorld {
  world: BenchWorld;
  /** A temporary folder of the run (removed by `cleanup`). */
  dir: string;
  policyFile: string;
  /** Removes the temporary policy file. */
  cleanup(): void;
}

/** The world of a run, its policy written to a temporary file (as the functions read it). */
const prepareWorld = (options: BenchOptions, withFloodUsers = false): PreparedWorld => {
  const { users, teams, repos, namespaces, floodUsers } = options.sizes;
  const world = generateWorld(
    { users, teams, repos, namespaces, floodUsers: withFloodUsers ? floodUsers : 0 },
    options.seed,
  );
  const dir = mkdtempSync(join(tmpdir(), 'swr-bench-'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, world.policyYaml);
  return { world, dir, policyFile, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
};

/** A log that keeps only what `keep` picks (a full memory log would distort the memory figures). */
const filteringLog = (keep: (message: string, attributes: LogAttributes) => void): Log => ({
  debug: () => undefined,
  info: (message, attributes = {}) => keep(message, attributes),
  warn: (message, attributes = {}) => keep(message, attributes),
  error: (message, attributes = {}) => keep(message, attributes),
});

/** Progress on stderr, so stdout stays clean. */
const progress = (message: string): void => {
  process.stderr.write(`  · ${message}\n`);
};

export type { PreparedWorld, ScenarioResult };
export { filteringLog, prepareWorld, progress };

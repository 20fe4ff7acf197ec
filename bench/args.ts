/**
 * The bench's command line: which scenarios, and every size, with a `--quick` preset. Pure
 * (takes argv, returns options or throws a usage error) so it can be tested.
 */
import { parseArgs } from 'node:util';

const ScenarioNames = {
  calls: 'calls',
  quota: 'quota',
  throughput: 'throughput',
  latency: 'latency',
  offboarding: 'offboarding',
  coldstart: 'coldstart',
  retry: 'retry',
  intake: 'intake',
} as const;

type ScenarioName = (typeof ScenarioNames)[keyof typeof ScenarioNames];

const allScenarios: readonly ScenarioName[] = Object.values(ScenarioNames);

interface BenchSizes {
  /** Reorganisation events (calls and retry benchmarks). */
  events: number;
  users: number;
  teams: number;
  repos: number;
  namespaces: number;
  /** Reorganisation events of the retry benchmark (each batch waits out its slowest retry: keep it short). */
  retryEvents: number;
  /** Events pushed through the local stack for the throughput benchmark. */
  throughputEvents: number;
  /** The naive handler's share of them (its rate does not depend on batching: a prefix is enough). */
  throughputNaiveEvents: number;
  /** The account quota of the quota benchmark, requests per second. */
  quotaRps: number;
  /** Events of the reorganisation the naive baseline applies under the quota (its time is scaled). */
  quotaNaiveEvents: number;
  /** Joins timed one at a time on a quiet system (join → grant latency). */
  latencySamples: number;
  /** Joins flooding access-changes during the offboarding benchmark (also the memory figure). */
  flood: number;
  /** Users the flood joins to teams (5 joins each on average); not among the offboarded. */
  floodUsers: number;
  offboardings: number;
  /** Pause between two offboardings, ms. */
  offboardIntervalMs: number;
  /** Fresh-process loads per bundle for the cold-start figure. */
  loadRuns: number;
  /** Simulator latency for the local-stack benchmarks, ms. */
  latencyMs: number;
  /** SWR calls in flight at once (ours and the naive baseline alike). */
  concurrency: number;
  /** SCIM PATCH requests in flight at once in the intake benchmark. */
  scimRequests: number;
}

/** The last commit before the cold-start work (issue 13): its functions are "today". */
const defaultColdstartBaseline = '9581f86d28f60a0f0f18134fb6385dcce60d84f0';

interface BenchOptions {
  quick: boolean;
  scenarios: ScenarioName[];
  sizes: BenchSizes;
  /** Seed of the workload generator and the fault dice. */
  seed: number;
  /** The commit whose sync function is the "today" of the cold-start first-invocation figure. */
  coldstartBaseline: string;
  out: string;
  markdown: string;
}

const fullSizes: BenchSizes = {
  events: 2000,
  retryEvents: 600,
  users: 300,
  teams: 40,
  repos: 200,
  namespaces: 5,
  throughputEvents: 1000,
  throughputNaiveEvents: 100,
  quotaRps: 20,
  quotaNaiveEvents: 60,
  latencySamples: 30,
  flood: 10_000,
  floodUsers: 2000,
  offboardings: 50,
  offboardIntervalMs: 100,
  loadRuns: 20,
  latencyMs: 20,
  concurrency: 8,
  scimRequests: 100,
};

const quickSizes: BenchSizes = {
  ...fullSizes,
  events: 300,
  retryEvents: 150,
  users: 60,
  teams: 12,
  repos: 40,
  namespaces: 3,
  throughputEvents: 150,
  throughputNaiveEvents: 30,
  quotaNaiveEvents: 30,
  latencySamples: 8,
  flood: 800,
  floodUsers: 160,
  offboardings: 10,
  loadRuns: 5,
};

/** CLI flag → size field. */
const sizeFlags = {
  events: 'events',
  'retry-events': 'retryEvents',
  users: 'users',
  teams: 'teams',
  repos: 'repos',
  namespaces: 'namespaces',
  'throughput-events': 'throughputEvents',
  'throughput-naive-events': 'throughputNaiveEvents',
  'quota-rps': 'quotaRps',
  'quota-naive-events': 'quotaNaiveEvents',
  'latency-samples': 'latencySamples',
  flood: 'flood',
  'flood-users': 'floodUsers',
  offboardings: 'offboardings',
  'offboard-interval-ms': 'offboardIntervalMs',
  'load-runs': 'loadRuns',
  'latency-ms': 'latencyMs',
  concurrency: 'concurrency',
  'scim-requests': 'scimRequests',
} as const satisfies Record<string, keyof BenchSizes>;

class BenchUsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchUsageError';
  }
}

const usage = `usage: npm run bench -- [--quick] [--only ${Object.values(ScenarioNames).join(',')}]
  [--seed N] [--out bench/results.json] [--markdown bench/results.md] [--coldstart-baseline COMMIT]
  sizes: ${Object.keys(sizeFlags)
    .map((flag) => `--${flag} N`)
    .join(' ')}
  defaults: ${JSON.stringify(fullSizes)}
  --quick:  ${JSON.stringify(quickSizes)}`;

const positiveInteger = (flag: string, text: string, min: number): number => {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min)
    throw new BenchUsageError(`--${flag} must be an integer ≥ ${min}, got ${JSON.stringify(text)}`);
  return value;
};

/**
 * @example parseBenchArgs(['--quick', '--only', 'calls,retry', '--events', '500'])
 */
const parseBenchArgs = (argv: readonly string[]): BenchOptions => {
  const sizeOptions = Object.fromEntries(
    Object.keys(sizeFlags).map((flag) => [flag, { type: 'string' as const }]),
  );
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        markdown: { type: 'string' },
        'coldstart-baseline': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
        ...sizeOptions,
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (error) {
    throw new BenchUsageError(`${(error as Error).message}\n${usage}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help === true) throw new BenchUsageError(usage);
  const quick = values.quick === true;
  const sizes: BenchSizes = { ...(quick ? quickSizes : fullSizes) };
  for (const [flag, field] of Object.entries(sizeFlags)) {
    const text = values[flag];
    if (typeof text === 'string')
      sizes[field] = positiveInteger(
        flag,
        text,
        field === 'offboardIntervalMs' || field === 'latencyMs' ? 0 : 1,
      );
  }
  if (sizes.floodUsers > sizes.flood)
    throw new BenchUsageError('--flood-users must not exceed --flood (every flood user joins at least once)');
  if (sizes.offboardings > sizes.users) throw new BenchUsageError('--offboardings must not exceed --users');
  if (sizes.throughputNaiveEvents > sizes.throughputEvents)
    throw new BenchUsageError('--throughput-naive-events must not exceed --throughput-events');
  if (sizes.quotaNaiveEvents > sizes.events)
    throw new BenchUsageError('--quota-naive-events must not exceed --events');
  if (sizes.latencySamples > sizes.floodUsers)
    throw new BenchUsageError(
      '--latency-samples must not exceed --flood-users (each sample is a new joiner)',
    );
  let scenarios = [...allScenarios];
  if (typeof values.only === 'string') {
    const asked = values.only
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '');
    const unknown = asked.filter((name) => !allScenarios.includes(name as ScenarioName));
    if (unknown.length > 0 || asked.length === 0)
      throw new BenchUsageError(
        `--only takes ${allScenarios.join(', ')}; got ${JSON.stringify(values.only)}`,
      );
    scenarios = allScenarios.filter((name) => asked.includes(name));
  }
  return {
    quick,
    scenarios,
    sizes,
    seed: typeof values.seed === 'string' ? positiveInteger('seed', values.seed, 0) : 20_261_120,
    out: typeof values.out === 'string' ? values.out : 'bench/results.json',
    markdown: typeof values.markdown === 'string' ? values.markdown : 'bench/results.md',
    coldstartBaseline:
      typeof values['coldstart-baseline'] === 'string'
        ? values['coldstart-baseline']
        : defaultColdstartBaseline,
  };
};

export type { BenchOptions, BenchSizes, ScenarioName };
export {
  allScenarios,
  BenchUsageError,
  defaultColdstartBaseline,
  fullSizes,
  parseBenchArgs,
  quickSizes,
  ScenarioNames,
};

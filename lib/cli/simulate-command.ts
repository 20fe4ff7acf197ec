/**
 * `simulate`: the SWR + IAM simulator in the foreground, for local work. The one CLI command that
 * loads `lib/sim`, and only when it runs (a dynamic import): every other command, and everything
 * the functions bundle, stays free of simulator code (see the Biome overrides in biome.json).
 */
import { ConfigError } from '../errors.ts';
import { type CliIo, type ExitCode, ExitCodes, line } from './io.ts';

const simulateUsage = `usage: swr-access simulate [--port N] [--seed FILE] [--latency MS] [--faults FILE|JSON]
                         [--quota RPS[:BURST]] [--lenient-user-names] [--revoke-missing 404|204]

Runs the SWR + IAM simulator in the foreground until SIGINT/SIGTERM: a LOCAL tool for development
and tests, not Huawei Cloud. Prints one JSON line {"swr":"<url>","iam":"<url>"} on stdout once both
listen, and on stderr the credentials the simulator accepts (from the seed file; they open nothing
but this simulator). The IAM port is the SWR port + 1.

  --port N               SWR port (default: one the OS picks)
  --seed FILE            the simulated account (default: config/demo-seed.json)
  --latency MS           added to every request
  --faults FILE|JSON     fault settings (FaultConfig fields: rates, failTargets rules, quota, seed)
  --quota RPS[:BURST]    the account's request quota across SWR calls (429 APIGW.0308 past it)
  --lenient-user-names   accept a user_name that is not IAM's current name for the id
  --revoke-missing CODE  DELETE of a user without a grant: 404 (default) or 204`;

/** @example await simulateCommand(['--port', '9000'], io) // until SIGINT */
const simulateCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  if (argv.includes('--help') || argv.includes('-h')) {
    line(io.stdout, simulateUsage);
    return ExitCodes.ok;
  }
  const [{ runSimulateCommand }, { SimulatorConfigError }] = await Promise.all([
    import('../sim/cli.ts'),
    import('../sim/errors.ts'),
  ]);
  try {
    await runSimulateCommand(argv, {
      stdout: io.stdout,
      stderr: io.stderr,
      ...(io.signal === undefined ? {} : { signal: io.signal }),
    });
  } catch (error) {
    // The simulator has its own error classes; for the CLI a bad argument or seed is a usage error.
    if (error instanceof SimulatorConfigError)
      throw new ConfigError(error.message.split('\n')[0] ?? error.message, error.problems, undefined, {
        cause: error,
      });
    throw error;
  }
  return ExitCodes.ok;
};

export { simulateCommand, simulateUsage };

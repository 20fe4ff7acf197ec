/**
 * `simulate`: the SWR + IAM simulator in the foreground, for local work. The one CLI command that
 * loads `lib/sim`, and only when it runs (a dynamic import): every other command, and everything
 * the functions bundle, stays free of simulator code (see the Biome overrides in biome.json).
 */
import { type CliIo, type ExitCode, ExitCodes, line } from './io.ts';

const simulateUsage = `usage: swr-access simulate [--port N] [--seed FILE] [--latency MS]

Runs the SWR + IAM simulator in the foreground until SIGINT/SIGTERM: a LOCAL tool for development
and tests, not Huawei Cloud. Prints one JSON line {"swr":"<url>","iam":"<url>"} on stdout once both
listen, and on stderr the credentials the simulator accepts (from the seed file; they open nothing
but this simulator). The IAM port is the SWR port + 1.

  --port N       SWR port (default: one the OS picks)
  --seed FILE    the simulated account (default: config/demo-seed.json)
  --latency MS   added to every request`;

/** @example await simulateCommand(['--port', '9000'], io) // until SIGINT */
const simulateCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  if (argv.includes('--help') || argv.includes('-h')) {
    line(io.stdout, simulateUsage);
    return ExitCodes.ok;
  }
  const { runSimulateCommand } = await import('../sim/cli.ts');
  await runSimulateCommand(argv, {
    stdout: io.stdout,
    stderr: io.stderr,
    ...(io.signal === undefined ? {} : { signal: io.signal }),
  });
  return ExitCodes.ok;
};

export { simulateCommand, simulateUsage };

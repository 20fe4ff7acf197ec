/**
 * `swr-access simulate`: runs the simulator in the foreground until SIGTERM or SIGINT.
 * Prints exactly one JSON line `{"swr":"<url>","iam":"<url>"}` on stdout once both listen,
 * so a parent process can read the URLs, and on stderr the credentials the simulator accepts:
 * they come from the seed file, open nothing but this local simulator, and a person starting it
 * needs them to point the CLI or a function at it.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { SimulatorConfigError } from './errors.ts';
import { readFaults } from './fault-options.ts';
import type { FaultConfig } from './faults.ts';
import { demoSeedPath, loadSeed, type SimulatorSeed } from './seed.ts';
import { startSimulator } from './server.ts';

interface SimulateArgs {
  port: number;
  seedPath: string;
  latencyMs: number;
  faults: Partial<FaultConfig>;
  strictUserNames: boolean;
  revokeMissing: '404' | '204';
}

interface SimulateIo {
  stdout?: { write(line: string): unknown };
  /** Where the accepted credentials are printed (default process.stderr). */
  stderr?: { write(line: string): unknown };
  /** Stops the simulator like a signal would (tests). */
  signal?: AbortSignal;
}

const usage =
  'usage: swr-access simulate [--port N] [--seed FILE] [--latency MS] [--faults FILE|JSON] [--quota RPS[:BURST]] [--lenient-user-names] [--revoke-missing 404|204]';

const whole = (flag: string, value: string | undefined, max: number): number => {
  if (value === undefined || !/^\d+$/.test(value) || Number(value) > max)
    throw new SimulatorConfigError(`${flag} needs an integer from 0 to ${max}`, [usage]);
  return Number(value);
};

/** `RPS` or `RPS:BURST` (burst defaults to RPS). */
const quotaOf = (value: string | undefined): FaultConfig['quota'] => {
  const m = /^(\d{1,6})(?::(\d{1,6}))?$/.exec(value ?? '');
  if (m === null || Number(m[1]) === 0 || (m[2] !== undefined && Number(m[2]) === 0))
    throw new SimulatorConfigError('--quota needs RPS or RPS:BURST, both whole numbers above 0', [usage]);
  return { ratePerSecond: Number(m[1]), burst: Number(m[2] ?? m[1]) };
};

/**
 * @example parseSimulateArgs(['--port', '9000', '--faults', '{"malformedRate":0.1}'])
 * // { port: 9000, seedPath: '…/config/demo-seed.json', latencyMs: 0, faults: { malformedRate: 0.1 }, … }
 */
const parseSimulateArgs = (argv: string[]): SimulateArgs => {
  const args: SimulateArgs = {
    port: 0,
    seedPath: demoSeedPath,
    latencyMs: 0,
    faults: {},
    strictUserNames: true,
    revokeMissing: '404',
  };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] ?? '';
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const value = () => {
      if (inline !== undefined) return inline;
      i += 1;
      return argv[i];
    };
    switch (flag) {
      case '--port':
        // The IAM listener takes the next port, so the highest SWR port is one below the top.
        args.port = whole(flag, value(), 65534);
        break;
      case '--seed': {
        const path = value();
        if (path === undefined || path === '') throw new SimulatorConfigError('--seed needs a file', [usage]);
        args.seedPath = resolve(path);
        break;
      }
      case '--latency':
        args.latencyMs = whole(flag, value(), 60_000);
        break;
      case '--faults': {
        const given = value();
        if (given === undefined || given === '')
          throw new SimulatorConfigError('--faults needs a file or JSON', [usage]);
        args.faults = { ...args.faults, ...readFaults(given) };
        break;
      }
      case '--quota':
        args.faults = { ...args.faults, quota: quotaOf(value()) };
        break;
      case '--lenient-user-names':
        if (inline !== undefined)
          throw new SimulatorConfigError('--lenient-user-names takes no value', [usage]);
        args.strictUserNames = false;
        break;
      case '--revoke-missing': {
        const given = value();
        if (given !== '404' && given !== '204')
          throw new SimulatorConfigError('--revoke-missing needs 404 or 204', [usage]);
        args.revokeMissing = given;
        break;
      }
      default:
        throw new SimulatorConfigError(`unknown argument ${arg}`, [usage]);
    }
  }
  return args;
};

/**
 * The lines that tell a person what this simulator accepts, as environment variables for the CLI
 * and the functions (one kind of credentials at a time).
 *
 * @example credentialLines(seed, 'config/demo-seed.json', urls)[0] // 'swr-access simulate: a LOCAL simulator…'
 */
const credentialLines = (
  seed: SimulatorSeed,
  seedPath: string,
  urls: { swr: string; iam: string },
): string[] => {
  const endpoints = `SWR_ENDPOINT=${urls.swr} IAM_ENDPOINT=${urls.iam}`;
  const password = [
    `HUAWEICLOUD_IAM_DOMAIN=${seed.account.name}`,
    `HUAWEICLOUD_IAM_USER=${seed.serviceAccount.name}`,
    `HUAWEICLOUD_IAM_PASSWORD=${seed.serviceAccount.password}`,
    `HUAWEICLOUD_PROJECT=${seed.project.name}`,
  ].join(' ');
  return [
    `swr-access simulate: a LOCAL simulator of SWR + IAM for development and tests, not Huawei Cloud.`,
    `It accepts these credentials from ${seedPath} (they open nothing but this simulator):`,
    `  endpoints:        ${endpoints}`,
    `  IAM password:     ${password}`,
    ...(seed.serviceAccount.staticToken === undefined
      ? []
      : [`  static token:     SWR_AUTH_TOKEN=${seed.serviceAccount.staticToken}`]),
    ...(seed.credentials ?? []).map(
      (credential) =>
        `  AK/SK:            HUAWEICLOUD_SDK_AK=${credential.ak} HUAWEICLOUD_SDK_SK=${credential.sk} HUAWEICLOUD_PROJECT_ID=${seed.project.id} HUAWEICLOUD_DOMAIN_ID=${seed.account.id}${
          credential.securityToken === undefined
            ? ''
            : ` HUAWEICLOUD_SECURITY_TOKEN=${credential.securityToken}`
        }`,
    ),
    'Set one kind of credentials at a time. Ctrl-C stops the simulator.',
  ];
};

const stopRequested = (signal: AbortSignal | undefined): Promise<string> =>
  new Promise((done) => {
    const stop = (reason: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      signal?.removeEventListener('abort', onAbort);
      done(reason);
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    const onAbort = () => stop('abort');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
    if (signal?.aborted) return stop('abort');
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/**
 * Runs the simulator until SIGTERM/SIGINT (or `io.signal`), then closes it.
 *
 * @example await runSimulateCommand(['--port', '9000', '--latency', '20']);
 */
const runSimulateCommand = async (argv: string[], io: SimulateIo = {}): Promise<void> => {
  const args = parseSimulateArgs(argv);
  const seed = loadSeed(args.seedPath);
  const sim = await startSimulator({
    seed,
    swrPort: args.port,
    iamPort: args.port === 0 ? 0 : args.port + 1,
    latencyMs: args.latencyMs,
    faults: args.faults,
    strictUserNames: args.strictUserNames,
    revokeMissing: args.revokeMissing,
  });
  // Listen for signals only once started, so a failed start leaves no handler behind.
  const stopped = stopRequested(io.signal);
  try {
    (io.stdout ?? process.stdout).write(`${JSON.stringify({ swr: sim.swrUrl, iam: sim.iamUrl })}\n`);
    const notice = credentialLines(seed, args.seedPath, { swr: sim.swrUrl, iam: sim.iamUrl });
    (io.stderr ?? process.stderr).write(`${notice.join('\n')}\n`);
    await stopped;
  } finally {
    await sim.close();
  }
};

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain)
  runSimulateCommand(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });

export type { SimulateArgs, SimulateIo };
export { credentialLines, parseSimulateArgs, runSimulateCommand };

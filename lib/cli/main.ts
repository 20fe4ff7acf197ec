/**
 * `swr-access`: the operator CLI. `main(argv, io)` runs one command and returns its exit code
 * (0 ok, 1 failures, 2 usage or configuration); it never calls `process.exit`, so tests run it
 * in-process. Errors are one clear line on stderr (a ConfigError with its list of problems).
 */
import { ConfigError, SyncError } from '../errors.ts';
import { redactSecrets } from '../redact.ts';
import { auditCommand, redriveCommand } from './commands.ts';
import { runEventCommand } from './events-command.ts';
import { type CliIo, type ExitCode, ExitCodes, line, UsageError } from './io.ts';
import { reconcileCommand } from './reconcile-command.ts';
import { showCommand } from './show-command.ts';
import { showUserCommand } from './show-user-command.ts';
import { simulateCommand } from './simulate-command.ts';
import { validatePolicyCommand } from './validate-policy-command.ts';

type CommandRun = (argv: string[], io: CliIo) => Promise<ExitCode>;

const commands: Record<string, { summary: string; run: CommandRun }> = {
  plan: {
    summary: 'what a file of events would change (reads SWR and the store, writes nothing)',
    run: (argv, io) => runEventCommand('plan', argv, io),
  },
  apply: {
    summary: 'process a file of events through the pipeline (backfills, emergencies)',
    run: (argv, io) => runEventCommand('apply', argv, io),
  },
  reconcile: {
    summary: 'make SWR match the store and the policy (mass-revoke guard)',
    run: reconcileCommand,
  },
  redrive: { summary: 'move dead-lettered messages back to their queue', run: redriveCommand },
  show: { summary: 'who has access: a target, or a user, as SWR reports it now', run: showCommand },
  audit: { summary: "a user's or a target's access history, with why, newest first", run: auditCommand },
  'show-user': {
    summary: 'what the store knows of a user: teams, pending facts, tombstone, next change',
    run: showUserCommand,
  },
  simulate: { summary: 'run the SWR + IAM simulator in the foreground', run: simulateCommand },
  'validate-policy': {
    summary: 'check an access policy as start-up does; --online: every target exists in SWR',
    run: validatePolicyCommand,
  },
};

const mainUsage = (): string =>
  [
    'usage: swr-access <command> [options]',
    '',
    'Keeps Huawei Cloud SWR repository permissions in step with teams. Configuration comes from',
    'the same environment variables as the functions (SWR_ENDPOINT, IAM_ENDPOINT, credentials,',
    'TABLE_NAME, POLICY_FILE, …).',
    '',
    'commands:',
    ...Object.entries(commands).map(([name, command]) => `  ${name.padEnd(16)}${command.summary}`),
    '',
    '`swr-access <command> --help` describes a command. Exit: 0 ok, 1 failures, 2 usage or configuration.',
  ].join('\n');

/** One line (a ConfigError keeps its list); unknown errors by name and message, never a stack. */
const describeError = (error: unknown): string => {
  if (error instanceof ConfigError) return `${error.name}: ${error.message}`;
  if (error instanceof SyncError) return `${error.name} (${error.code}): ${error.message}`;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
};

const defaultIo = (): CliIo => ({
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
});

/**
 * Runs one command line; resolves to the exit code.
 *
 * @example process.exitCode = await main(process.argv.slice(2));
 */
const main = async (argv: readonly string[], io: Partial<CliIo> = {}): Promise<ExitCode> => {
  const full: CliIo = { ...defaultIo(), ...io };
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    line(name === undefined ? full.stderr : full.stdout, mainUsage());
    return name === undefined ? ExitCodes.usage : ExitCodes.ok;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    line(full.stderr, `swr-access: unknown command ${JSON.stringify(name)}`);
    line(full.stderr, mainUsage());
    return ExitCodes.usage;
  }
  try {
    return await command.run(rest, full);
  } catch (error) {
    line(full.stderr, `swr-access ${name}: ${redactSecrets(describeError(error))}`);
    if (error instanceof UsageError) {
      if (error.usage !== undefined) line(full.stderr, error.usage.split('\n')[0]);
      return ExitCodes.usage;
    }
    return error instanceof ConfigError ? ExitCodes.usage : ExitCodes.failed;
  }
};

export { main, mainUsage };

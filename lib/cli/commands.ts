/**
 * The small commands: `validate-policy`, `audit`, `redrive`, `simulate`. Each reads its arguments,
 * does one thing through a library module and reports; exit codes per `ExitCodes`.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { auditByUser, createDynamoAuditStore } from '../audit/index.ts';
import { awsClientConfig } from '../aws.ts';
import { allPolicyTargets, loadPolicyFile } from '../core/policy.ts';
import { permissionOfLevel, targetKey } from '../domain.ts';
import { ConfigError } from '../errors.ts';
import { queueUrlVariables, type RedriveReport, redrive } from '../redrive.ts';
import { runSimulateCommand } from '../sim/cli.ts';
import { SimulatorConfigError } from '../sim/errors.ts';
import { flag, intValue, parseCommandArgs, requiredString, stringValue } from './args.ts';
import { type CliIo, type ExitCode, ExitCodes, line, table, UsageError, writeJson } from './io.ts';
import { cliRequestTimeoutMs, requireTableName } from './services.ts';

const validatePolicyUsage = `usage: swr-access validate-policy FILE [--json]

Checks an access policy with the same rules as start-up: every problem is listed with its file,
line, column and YAML path.

Exit: 0 valid (a one-line summary); 2 invalid (every problem listed) or unreadable.`;

/** @example await validatePolicyCommand(['config/policy.yaml'], io) // 0 */
const validatePolicyCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  const parsed = parseCommandArgs(argv, { json: { type: 'boolean' } }, validatePolicyUsage, 1);
  if (parsed.help) {
    line(io.stdout, validatePolicyUsage);
    return ExitCodes.ok;
  }
  const path = parsed.positionals[0];
  if (path === undefined) throw new UsageError('the policy FILE is required', validatePolicyUsage);
  const json = flag(parsed, 'json');
  try {
    const policy = await loadPolicyFile(path);
    const summary = {
      ok: true,
      file: path,
      teams: Object.keys(policy.teams).length,
      targets: allPolicyTargets(policy).length,
      protectedUsers: policy.protectedUsers.length,
      managedNamespaces: policy.managedNamespaces.length,
    };
    if (json) writeJson(io.stdout, summary);
    else
      line(
        io.stdout,
        `${path}: valid: ${summary.teams} teams, ${summary.targets} targets, ${summary.protectedUsers} protected users, ${summary.managedNamespaces} managed namespaces`,
      );
    return ExitCodes.ok;
  } catch (error) {
    if (!(error instanceof ConfigError) || !json) throw error;
    writeJson(io.stdout, {
      ok: false,
      file: path,
      message: error.message.split('\n')[0],
      problems: error.problems,
    });
    return ExitCodes.usage;
  }
};

const auditUsage = `usage: swr-access audit --user ID|NAME [--limit N] [--json]

A user's access history, newest first, from the durable audit records in the membership table
(TABLE_NAME). A 32-hex value is an IAM user id; anything else is the user name the records were
written under (no IAM call: works for users IAM no longer knows).

  --user ID|NAME   the user
  --limit N        at most N records (default 50, up to 10000)
  --json           the records as JSON on stdout

Exit: 0 listed (also when there is none); 2 usage or configuration.`;

const levelText = (level: number | undefined): string =>
  level === undefined ? 'none' : permissionOfLevel(level as 1 | 3 | 7);

/** @example await auditCommand(['--user', 'alice', '--json'], io) */
const auditCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  const parsed = parseCommandArgs(
    argv,
    { user: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
    auditUsage,
    0,
  );
  if (parsed.help) {
    line(io.stdout, auditUsage);
    return ExitCodes.ok;
  }
  const user = requiredString(parsed, 'user', auditUsage);
  const limit = intValue(parsed, 'limit', { min: 1, max: 10_000 }, auditUsage) ?? 50;
  const tableName = requireTableName(io.env);
  const client = io.aws?.dynamo ?? new DynamoDBClient(awsClientConfig(cliRequestTimeoutMs));
  try {
    const store = createDynamoAuditStore({ client, tableName });
    const { userIds, records } = await auditByUser(store, user, { limit });
    const views = records.map((record) => ({
      at: record.at,
      actor: record.actor,
      userId: record.userId,
      userName: record.userName,
      target: targetKey(record.target),
      targetKind: record.target.kind,
      before: record.before === undefined ? null : permissionOfLevel(record.before),
      after: record.after === undefined ? null : permissionOfLevel(record.after),
      eventIds: record.eventIds,
      sources: record.sources,
      dryRun: record.dryRun,
    }));
    if (flag(parsed, 'json')) writeJson(io.stdout, { user, userIds, records: views });
    else if (views.length === 0) line(io.stdout, `audit: no records for ${user}`);
    else {
      line(io.stdout, `audit: ${views.length} records for ${user} (${userIds.join(', ')}), newest first`);
      for (const row of table([
        ['TIME', 'ACTOR', 'USER', 'TARGET', 'CHANGE', 'EVENTS'],
        ...records.map((record) => [
          record.at,
          record.actor,
          record.userName,
          targetKey(record.target),
          `${levelText(record.before)} → ${levelText(record.after)}${record.dryRun ? ' (dry run)' : ''}`,
          record.eventIds.join(','),
        ]),
      ]))
        line(io.stdout, `  ${row}`);
    }
    return ExitCodes.ok;
  } finally {
    if (io.aws?.dynamo === undefined) client.destroy();
  }
};

const redriveUsage = `usage: swr-access redrive --queue access-changes|offboarding [--error-code C] [--dry-run] [--max N] [--json]

Moves messages from a queue's DLQ back to the queue (same message group and deduplication id,
DLQ attributes dropped). Never deletes a message whose copy was not sent. Messages not moved are
visible in the DLQ again when the run ends. Queue URLs: ACCESS_CHANGES_QUEUE_URL,
ACCESS_CHANGES_DLQ_URL, OFFBOARDING_QUEUE_URL, OFFBOARDING_DLQ_URL.

  --queue Q         access-changes or offboarding
  --error-code C    move only messages whose errorCode attribute is C
  --dry-run         report what would move; move nothing
  --max N           look at most at N messages (default 1000)
  --json            the report as JSON on stdout

SQS drops a copy whose deduplication id the queue saw in the last 5 minutes: redrive a message
that SQS dead-lettered itself only 5 minutes after it was first sent.

Exit: 0 nothing failed; 1 some messages could not be moved; 2 usage or configuration.`;

const queueNames = { 'access-changes': 'accessChanges', offboarding: 'offboarding' } as const;

const writeRedriveText = (io: CliIo, queue: string, report: RedriveReport): void => {
  const verb = report.dryRun ? 'would move' : 'moved';
  line(
    io.stdout,
    `redrive ${queue}: ${report.moved} ${verb}, ${report.skipped} skipped, ${report.failed} failed`,
  );
  for (const entry of report.entries)
    if (entry.status === 'failed') line(io.stdout, `  failed ${entry.messageId}: ${entry.reason ?? ''}`);
};

/** @example await redriveCommand(['--queue', 'offboarding', '--error-code', 'AUTH_FAILED'], io) */
const redriveCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  const parsed = parseCommandArgs(
    argv,
    {
      queue: { type: 'string' },
      'error-code': { type: 'string' },
      'dry-run': { type: 'boolean' },
      max: { type: 'string' },
      json: { type: 'boolean' },
    },
    redriveUsage,
    0,
  );
  if (parsed.help) {
    line(io.stdout, redriveUsage);
    return ExitCodes.ok;
  }
  const queueArg = requiredString(parsed, 'queue', redriveUsage);
  if (!Object.hasOwn(queueNames, queueArg))
    throw new UsageError(`--queue must be access-changes or offboarding`, redriveUsage);
  const queue = queueNames[queueArg as keyof typeof queueNames];
  const max = intValue(parsed, 'max', { min: 1, max: 100_000 }, redriveUsage) ?? 1000;
  const variables = queueUrlVariables[queue];
  const sourceUrl = io.env[variables.source]?.trim();
  const dlqUrl = io.env[variables.dlq]?.trim();
  const problems = [
    ...(sourceUrl ? [] : [`${variables.source} is required`]),
    ...(dlqUrl ? [] : [`${variables.dlq} is required`]),
  ];
  if (problems.length > 0 || !sourceUrl || !dlqUrl) throw new ConfigError('invalid configuration', problems);
  const errorCode = stringValue(parsed, 'error-code');
  const dryRun = flag(parsed, 'dry-run');
  const sqs = io.aws?.sqs ?? new SQSClient(awsClientConfig(cliRequestTimeoutMs));
  try {
    line(
      io.stderr,
      `redrive ${queueArg}: ${dryRun ? 'dry run: ' : ''}from the DLQ to the queue${
        errorCode === undefined ? '' : `, only errorCode ${errorCode}`
      }, at most ${max} messages`,
    );
    const report = await redrive({
      sqs,
      dlqUrl,
      sourceUrl,
      ...(errorCode === undefined ? {} : { errorCode }),
      dryRun,
      max,
      onProgress: (progress) =>
        line(
          io.stderr,
          `redrive ${queueArg}: ${progress.seen} seen, ${progress.moved} ${dryRun ? 'would move' : 'moved'}, ${progress.skipped} skipped, ${progress.failed} failed`,
        ),
    });
    for (const warning of report.warnings) line(io.stderr, `redrive ${queueArg}: warning: ${warning}`);
    if (flag(parsed, 'json')) writeJson(io.stdout, { queue: queueArg, ...report });
    else writeRedriveText(io, queueArg, report);
    return report.failed > 0 ? ExitCodes.failed : ExitCodes.ok;
  } finally {
    if (io.aws?.sqs === undefined) sqs.destroy();
  }
};

const simulateUsage = `usage: swr-access simulate [--port N] [--seed FILE] [--latency MS] [--faults FILE|JSON]
                         [--quota RPS[:BURST]] [--lenient-user-names] [--revoke-missing 404|204]

Runs the SWR + IAM simulator in the foreground until SIGINT/SIGTERM. Prints one JSON line
{"swr":"<url>","iam":"<url>"} on stdout once both listen. The IAM port is the SWR port + 1.

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
  try {
    await runSimulateCommand(argv, {
      stdout: io.stdout,
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

export { auditCommand, redriveCommand, simulateCommand, validatePolicyCommand };

/**
 * The small commands: `audit`, `redrive`. Each reads its arguments,
 * does one thing through a library module and reports; exit codes per `ExitCodes`.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SQSClient } from '@aws-sdk/client-sqs';
import { auditByUser, createDynamoAuditStore } from '../audit/index.ts';
import { awsClientConfig } from '../aws.ts';
import { namespaceRule, repositoryRule } from '../core/names.ts';
import { permissionOfLevel, type Target, targetKey } from '../domain.ts';
import { ConfigError } from '../errors.ts';
import type { AuditRecord } from '../observability.ts';
import { queueUrlVariables, type RedriveReport, redrive } from '../redrive.ts';
import { flag, intValue, parseCommandArgs, requiredString, stringValue } from './args.ts';
import { type CliIo, type ExitCode, ExitCodes, line, table, UsageError, writeJson } from './io.ts';
import { cliRequestTimeoutMs, requireTableName } from './services.ts';

const auditUsage = `usage: swr-access audit (--user ID|NAME | --target NS[/REPO]) [--limit N] [--json]

Access history, newest first, from the durable audit records in the membership table
(TABLE_NAME): who changed what, from which level to which, by which events, and why.

  --user ID|NAME    one user: a 32-hex value is an IAM user id; anything else is the user name the
                    records were written under (no IAM call: works for users IAM no longer knows)
  --target T        one target: NAMESPACE/REPOSITORY (e.g. core/api/server), or NAMESPACE for the
                    namespace permission itself; with --user, only that user's records there
  --limit N         at most N records (default 50, up to 10000)
  --json            the records as JSON on stdout

Only changes that were made are kept: dry runs (plan, DRY_RUN, reconcile --dry-run) write no
audit record. Records are kept 400 days. --target finds the records written since target
history was kept (each record is stored under its user and under its target).

Exit: 0 listed (also when there is none); 2 usage or configuration.`;

const levelText = (level: number | undefined): string =>
  level === undefined ? 'none' : permissionOfLevel(level as 1 | 3 | 7);

/**
 * `NS/REPO` or `NS` as a target, checked with the SWR name rules.
 *
 * @example parseTargetArgument('core/api/server', usage) // { kind: 'repo', namespace: 'core', repository: 'api/server' }
 */
const parseTargetArgument = (value: string, usage: string): Target => {
  const slash = value.indexOf('/');
  const namespace = slash < 0 ? value : value.slice(0, slash);
  const namespaceProblem = namespaceRule(namespace);
  if (namespaceProblem !== undefined)
    throw new UsageError(`--target: namespace ${JSON.stringify(namespace)} ${namespaceProblem}`, usage);
  if (slash < 0) return { kind: 'namespace', namespace };
  const repository = value.slice(slash + 1);
  const repositoryProblem = repositoryRule(repository);
  if (repositoryProblem !== undefined)
    throw new UsageError(`--target: repository ${JSON.stringify(repository)} ${repositoryProblem}`, usage);
  return { kind: 'repo', namespace, repository };
};

const auditView = (record: AuditRecord) => ({
  at: record.at,
  actor: record.actor,
  userId: record.userId,
  userName: record.userName,
  target: targetKey(record.target),
  targetKind: record.target.kind,
  before: record.before === undefined ? null : permissionOfLevel(record.before),
  after: record.after === undefined ? null : permissionOfLevel(record.after),
  reason: record.reason ?? null,
  eventIds: record.eventIds,
  sources: record.sources,
  dryRun: record.dryRun,
});

const sameTarget = (a: Target, b: Target): boolean => a.kind === b.kind && targetKey(a) === targetKey(b);

/** @example await auditCommand(['--user', 'alice', '--json'], io) */
const auditCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  const parsed = parseCommandArgs(
    argv,
    {
      user: { type: 'string' },
      target: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    },
    auditUsage,
    0,
  );
  if (parsed.help) {
    line(io.stdout, auditUsage);
    return ExitCodes.ok;
  }
  const user = stringValue(parsed, 'user');
  const targetArg = stringValue(parsed, 'target');
  if ((user === undefined || user === '') && (targetArg === undefined || targetArg === ''))
    throw new UsageError('--user or --target is required', auditUsage);
  const target = targetArg === undefined ? undefined : parseTargetArgument(targetArg, auditUsage);
  const limit = intValue(parsed, 'limit', { min: 1, max: 10_000 }, auditUsage) ?? 50;
  const tableName = requireTableName(io.env);
  const client = io.aws?.dynamo ?? new DynamoDBClient(awsClientConfig(cliRequestTimeoutMs));
  try {
    const store = createDynamoAuditStore({ client, tableName });
    let userIds: string[] | undefined;
    let records: AuditRecord[];
    if (user !== undefined) {
      // With a target too, every record of the user is read and filtered: a user's history is short.
      const answer = await auditByUser(store, user, target === undefined ? { limit } : {});
      userIds = answer.userIds;
      records =
        target === undefined
          ? answer.records
          : answer.records.filter((record) => sameTarget(record.target, target)).slice(0, limit);
    } else records = await store.listByTarget(target as Target, { limit });
    const subject = [
      ...(user === undefined ? [] : [`for ${user}`]),
      ...(target === undefined ? [] : [`on ${targetKey(target)}`]),
    ].join(' ');
    const views = records.map(auditView);
    if (flag(parsed, 'json'))
      writeJson(io.stdout, {
        ...(user === undefined ? {} : { user, userIds }),
        ...(target === undefined ? {} : { target: targetKey(target), targetKind: target.kind }),
        records: views,
      });
    else if (views.length === 0) line(io.stdout, `audit: no records ${subject}`);
    else {
      line(
        io.stdout,
        `audit: ${views.length} records ${subject}${userIds === undefined ? '' : ` (${userIds.join(', ')})`}, newest first`,
      );
      for (const row of table([
        ['TIME', 'ACTOR', 'USER', 'TARGET', 'CHANGE', 'EVENTS', 'WHY'],
        ...records.map((record) => [
          record.at,
          record.actor,
          record.userName,
          targetKey(record.target),
          `${levelText(record.before)} → ${levelText(record.after)}${record.dryRun ? ' (dry run)' : ''}`,
          record.eventIds.length === 0 ? '-' : record.eventIds.join(','),
          record.reason ?? '-',
        ]),
      ]))
        line(io.stdout, `  ${row}`);
    }
    return ExitCodes.ok;
  } finally {
    if (io.aws?.dynamo === undefined) client.destroy();
  }
};

const redriveUsage = `usage: swr-access redrive --queue access-changes|offboarding|offboarding-sweeps [--error-code C] [--dry-run] [--max N] [--json]

Moves messages from a queue's DLQ back to the queue (same message group and deduplication id,
DLQ attributes dropped). Never deletes a message whose copy was not sent. Messages not moved are
visible in the DLQ again when the run ends. Queue URLs: ACCESS_CHANGES_QUEUE_URL,
ACCESS_CHANGES_DLQ_URL, OFFBOARDING_QUEUE_URL, OFFBOARDING_DLQ_URL, OFFBOARDING_SWEEPS_QUEUE_URL,
OFFBOARDING_SWEEPS_DLQ_URL.

  --queue Q         access-changes, offboarding or offboarding-sweeps (a leaver's sweep: safe to
                    send again, a finished or superseded sweep is skipped)
  --error-code C    move only messages whose errorCode attribute is C
  --dry-run         report what would move; move nothing
  --max N           look at most at N messages (default 1000)
  --json            the report as JSON on stdout

SQS drops a copy whose deduplication id the queue saw in the last 5 minutes: redrive a message
that SQS dead-lettered itself only 5 minutes after it was first sent.

Exit: 0 nothing failed; 1 some messages could not be moved; 2 usage or configuration.`;

const queueNames = {
  'access-changes': 'accessChanges',
  offboarding: 'offboarding',
  'offboarding-sweeps': 'offboardingSweeps',
} as const;

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
    throw new UsageError(`--queue must be access-changes, offboarding or offboarding-sweeps`, redriveUsage);
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

export { auditCommand, parseTargetArgument, redriveCommand };

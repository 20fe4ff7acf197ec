/**
 * `npm start`: the main job on one machine. Starts the local stack (SWR/IAM simulator seeded from
 * the demo directory, fauxqs, dynalite, pollers driving the real handlers), sends the demo events
 * (or `--events FILE`), waits until the queues drain, and prints what changed, the final
 * permissions per target and every dead-lettered message with its reason.
 */
import { rm, writeFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { readEventsText, splitEventsText } from '../events-file.ts';
import { createMemoryTelemetry, type Log } from '../observability.ts';
import { redactSecrets } from '../redact.ts';
import { loadSeed } from '../sim/index.ts';
import { startLocalIntake } from './intake.ts';
import { eventOutcomes, outcomeCounts } from './outcomes.ts';
import { localCredentials, localRegion } from './sqs.ts';
import { startSqsGateway } from './sqs-gateway.ts';
import { type DeadLetterView, startLocalStack } from './stack.ts';

/** Holds the local credentials: a file, so that they never appear on the terminal or in logs. */
const serveEnvFile = '.local-stack.env';

const usage = `Usage: npm start [-- --events FILE] [-- --policy FILE] [-- --serve [--env-out FILE] [--seed FILE]]

Runs swr-access-sync on an embedded local stack and prints a summary.
  --events FILE   events to send: a JSON array or NDJSON, '-' for stdin (default events/demo.ndjson)
  --policy FILE   access policy (default config/demo-policy.yaml)
  --serve         keep a live stack running (simulator, queues with pollers, table, the intake on
                  127.0.0.1) until Ctrl-C; its environment is written to ${serveEnvFile}
  --env-out FILE  with --serve: write the environment to FILE instead
  --seed FILE     with --serve: the simulated account (default config/demo-seed.json)
  --help          this text`;

const levelName: Record<string, string> = { '1': 'read', '3': 'write', '7': 'manage' };

const table = (rows: string[][]): string => {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, column) => cell.padEnd(widths[column] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
};

/** What a live stack prints: applied changes, warnings and errors, one line each (never secrets). */
const liveLog = (): Log => {
  const print = (level: string, message: string, attributes: Record<string, unknown> = {}) => {
    const details = Object.entries(attributes)
      .filter(([key]) => key !== 'audit')
      .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
      .join(' ');
    process.stdout.write(
      `${redactSecrets(`${new Date().toISOString()} ${level} ${message} ${details}`.trimEnd())}\n`,
    );
  };
  return {
    debug: () => undefined,
    info: (message, attributes) => {
      if (attributes?.audit === true) print('CHANGE', message, attributes);
    },
    warn: (message, attributes) => print('WARN', message, attributes),
    error: (message, attributes) => print('ERROR', message, attributes),
  };
};

/**
 * A live stack until Ctrl-C: the simulator, the queues with their pollers and handlers, the table,
 * and the intake on 127.0.0.1. Its environment goes to `envFile`: the CLI, `serverless invoke
 * local` (any function) and scripts run against it with it.
 */
const serve = async (policyFile: string, envFile: string, seedFile: string | undefined): Promise<number> => {
  const telemetry = createMemoryTelemetry();
  const log = liveLog();
  const stack = await startLocalStack({
    policyFile,
    log,
    metrics: telemetry.metrics,
    ...(seedFile === undefined ? {} : { seed: loadSeed(seedFile) }),
  });
  const stops: Array<() => Promise<void>> = [() => stack.stop()];
  try {
    const intake = await startLocalIntake(stack, { log, metrics: telemetry.metrics });
    stops.unshift(() => intake.close());
    // Processes outside this one reach the queues by 127.0.0.1 URLs (see sqs-gateway.ts).
    const gateway = await startSqsGateway(stack.sqs.endpoint, stack.sqs.queues.accessChanges.url);
    stops.unshift(() => gateway.close());
    const env: Record<string, string> = {
      INTAKE_URL: intake.url,
      INTAKE_SCIM_TOKEN: intake.scimToken,
      OKTA_HOOK_SECRET: intake.oktaHookSecret,
      SWR_ENDPOINT: stack.env.SWR_ENDPOINT as string,
      IAM_ENDPOINT: stack.env.IAM_ENDPOINT as string,
      SWR_AUTH_TOKEN: stack.sim.seed.serviceAccount.staticToken ?? '',
      TABLE_NAME: stack.tableName,
      ACCESS_CHANGES_QUEUE_URL: gateway.loopbackUrl(stack.sqs.queues.accessChanges.url),
      OFFBOARDING_QUEUE_URL: gateway.loopbackUrl(stack.sqs.queues.offboarding.url),
      ACCESS_CHANGES_DLQ_URL: gateway.loopbackUrl(stack.sqs.queues.accessChanges.dlqUrl),
      OFFBOARDING_DLQ_URL: gateway.loopbackUrl(stack.sqs.queues.offboarding.dlqUrl),
      OFFBOARDING_SWEEPS_QUEUE_URL: gateway.loopbackUrl(stack.sqs.queues.offboardingSweeps.url),
      OFFBOARDING_SWEEPS_DLQ_URL: gateway.loopbackUrl(stack.sqs.queues.offboardingSweeps.dlqUrl),
      POLICY_FILE: resolve(policyFile),
      AWS_ENDPOINT_URL_SQS: gateway.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: stack.dynamo.endpoint,
      AWS_REGION: localRegion,
      AWS_ACCESS_KEY_ID: localCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: localCredentials.secretAccessKey,
    };
    await writeFile(
      envFile,
      `${Object.entries(env)
        .map(([name, value]) => `${name}=${value}`)
        .join('\n')}\n`,
      { mode: 0o600 },
    );
    stops.push(() => rm(envFile, { force: true }));
    process.stdout.write(
      [
        `local stack running: intake ${intake.url} (SCIM ${intake.url}/scim/v2, Okta hook ${intake.url}/hooks/okta, events ${intake.url}/events)`,
        `  SWR ${stack.sim.swrUrl}, IAM ${stack.sim.iamUrl}, SQS ${gateway.endpoint}, DynamoDB ${stack.dynamo.endpoint}; pollers running`,
        `the environment (with the intake secrets) is in ${envFile}; in another terminal:`,
        `  set -a; . ${isAbsolute(envFile) ? envFile : `./${envFile}`}; set +a; npx swr-access show --target core/api/server`,
        `  npx serverless invoke local --stage local -f sync -p events/sqs-join.json $(sed 's/^/--env /' ${envFile})`,
        'Ctrl-C stops it.',
        '',
      ].join('\n'),
    );
    // `on`, not `once`: Ctrl-C reaches every process of the group (npm, tsx, node), so a second
    // SIGINT may follow; it must not kill the process before the stack is stopped.
    await new Promise<void>((done) => {
      process.on('SIGINT', () => done());
      process.on('SIGTERM', () => done());
    });
    return 0;
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
  }
};

const main = async (argv: string[]): Promise<number> => {
  const { values } = parseArgs({
    args: argv,
    options: {
      events: { type: 'string' },
      policy: { type: 'string' },
      seed: { type: 'string' },
      serve: { type: 'boolean' },
      'env-out': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (values.serve)
    return serve(values.policy ?? 'config/demo-policy.yaml', values['env-out'] ?? serveEnvFile, values.seed);
  const eventsFile = values.events ?? 'events/demo.ndjson';
  const { entries } = splitEventsText(await readEventsText(eventsFile, process.stdin));
  const progress = (text: string) => process.stderr.write(`${text}\n`);
  const telemetry = createMemoryTelemetry();
  progress('starting the local stack (SWR/IAM simulator, fauxqs, dynalite, pollers)…');
  const stack = await startLocalStack({
    policyFile: values.policy ?? 'config/demo-policy.yaml',
    log: telemetry.log,
    metrics: telemetry.metrics,
  });
  try {
    progress(
      `  SWR ${stack.sim.swrUrl}  IAM ${stack.sim.iamUrl}  SQS ${stack.sqs.endpoint}  DynamoDB ${stack.dynamo.endpoint}`,
    );
    const names = new Map(stack.sim.seed.users.map((user) => [user.id, user.name]));
    names.set(stack.sim.seed.serviceAccount.id, stack.sim.seed.serviceAccount.name);
    const nameOf = (id: string) => names.get(id) ?? id;
    const initial = stack.sim.permissions();

    progress(`sending ${entries.length} events from ${eventsFile}…`);
    await stack.send(entries.map((entry) => entry.body));
    let last = -1;
    await stack.drain({
      timeoutMs: 300_000,
      onProgress: (remaining) => {
        if (remaining !== last) progress(`  ${remaining} message(s) on the queues…`);
        last = remaining;
      },
    });
    // Removing what is read: a FIFO queue shows one message per group while it is in flight.
    const letters = await stack.deadLetters({ remove: true });
    const final = stack.sim.permissions();
    const outcomes = eventOutcomes(entries, telemetry.lines, letters);

    const out: string[] = [];
    const changes = telemetry.lines.filter((line) => line.audit === true);
    out.push(`\n== Changes applied (${changes.length}) ==`);
    if (changes.length > 0)
      out.push(
        table([
          ['user', 'target', 'before', 'after', 'by', 'events'],
          ...changes.map((line) => [
            String(line.userName),
            String(line.target),
            String(line.before),
            String(line.after),
            String(line.actor),
            (line.eventIds as string[]).join(','),
          ]),
        ]),
      );
    out.push(`\n== Every event's outcome (${outcomeCounts(outcomes)}) ==`);
    out.push(
      table([
        ['event', 'id', 'what', 'outcome', 'detail'],
        ...outcomes.map((outcome) => [
          outcome.label,
          outcome.eventId ?? '-',
          outcome.what,
          outcome.outcome,
          outcome.detail.slice(0, 200),
        ]),
      ]),
    );
    out.push('\n== Final permissions (changed entries marked *) ==');
    const rows: string[][] = [['target', 'user', 'level']];
    const addRows = (
      kind: 'namespace' | 'repo',
      key: string,
      now: Record<string, number>,
      before: Record<string, number>,
    ) => {
      const users = Object.entries(now).sort(([a], [b]) => nameOf(a).localeCompare(nameOf(b)));
      if (users.length === 0) rows.push([`${key}${kind === 'namespace' ? ' (namespace)' : ''}`, '-', '-']);
      for (const [id, level] of users)
        rows.push([
          `${key}${kind === 'namespace' ? ' (namespace)' : ''}`,
          nameOf(id),
          `${levelName[String(level)] ?? level}${before[id] === level ? '' : ' *'}`,
        ]);
    };
    for (const [key, users] of Object.entries(final.namespaces))
      addRows('namespace', key, users, initial.namespaces[key] ?? {});
    for (const [key, users] of Object.entries(final.repos))
      addRows('repo', key, users, initial.repos[key] ?? {});
    out.push(table(rows));
    out.push(`\n== Dead-lettered messages (${letters.length}) ==`);
    const describe = (letter: DeadLetterView) =>
      `- [${letter.queue}] ${letter.attributes.errorCode}: ${letter.attributes.errorMessage}` +
      `${letter.attributes.failedTarget ? ` (target ${letter.attributes.failedTarget})` : ''}` +
      `, attempts ${letter.attributes.attempts ?? '?'}\n    body: ${letter.body.slice(0, 160)}`;
    for (const letter of letters) out.push(describe(letter));
    const warnings = telemetry.lines.filter((line) => line.level === 'WARN');
    if (warnings.length > 0) {
      out.push(`\n== Warnings (${warnings.length}) ==`);
      for (const line of warnings)
        out.push(`- ${line.message}${line.team ? ` (team ${String(line.team)})` : ''}`);
    }
    const counts = stack.sim.requestCounts();
    const swrCalls = Object.entries(counts)
      .filter(([route]) => route.includes('/v2/'))
      .reduce((sum, [, count]) => sum + count, 0);
    out.push(
      `\n${entries.length} events sent: ${outcomeCounts(outcomes)}; ${changes.length} changes, ${letters.length} messages in the DLQs, ${swrCalls} SWR API calls.`,
    );
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  } finally {
    await stack.stop();
  }
};

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`npm start failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);

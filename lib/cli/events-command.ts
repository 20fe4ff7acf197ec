/**
 * `plan` and `apply`: a file of events through the queue handlers' own pipeline
 * (`processRecords`): the same parsing, user resolution, staleness and per-user order rules, the
 * same planner and executor. `plan` reads the store and SWR and writes nothing (a read-only store
 * overlay, and a dry run: no SWR write, no audit); `apply` writes, for backfills and emergencies.
 *
 * Events go through in file order, in batches (`apply`: 100 by default; `plan`: one batch, so
 * the plan is the net effect of the whole file on the state read once). A user whose event failed
 * with a retryable error is held: their later events are not applied out of order, and are
 * listed as failed too, as a FIFO queue would hold them.
 */
import type { PeopleEvent } from '../domain.ts';
import type { AuditRecord } from '../observability.ts';
import { type MessageFailure, type PipelineDeps, type PipelineRecord, processRecords } from '../pipeline.ts';
import { flag, intValue, parseCommandArgs, requiredString, stringValue } from './args.ts';
import { type EventsFile, type FileEvent, groupOf, readEventsFile } from './events-file.ts';
import { type CliIo, type ExitCode, ExitCodes, line, writeJson } from './io.ts';
import { createReadOnlyStore } from './read-only-store.ts';
import { callsOf, type EventRunReport, writeEventRunText } from './report.ts';
import { cliTelemetry, openStores, openSwr, readCliConfig } from './services.ts';

type EventCommand = 'plan' | 'apply';

const options = {
  policy: { type: 'string' },
  events: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  'batch-size': { type: 'string' },
} as const;

const usages: Record<EventCommand, string> = {
  plan: `usage: swr-access plan --events FILE [--policy FILE] [--json] [--verbose]

What the events would change, reading the membership store (DynamoDB when TABLE_NAME is set,
else an empty memory store) and the actual permissions in SWR. Writes nothing: no store write,
no SWR call but GETs, no audit record. Prints the planned calls (target, action, users, levels).

  --events FILE   a JSON array of events, or NDJSON (one per line); - reads stdin
  --policy FILE   the access policy (default: POLICY_FILE)
  --json          the report as JSON on stdout
  --verbose       the pipeline's log records on stderr, as JSON lines

Exit: 0 planned; 1 some events are invalid or could not be planned; 2 usage or configuration.`,
  apply: `usage: swr-access apply --events FILE [--policy FILE] [--batch-size N] [--json] [--verbose]

Processes a file of events through the queue handlers' pipeline, for backfills and emergencies:
the store (DynamoDB when TABLE_NAME is set, else memory — said on stderr) records the facts,
SWR is changed, changes are audited. Stale events are ignored, repeated event ids dropped, and
each user's events applied in file order. Honours DRY_RUN.

  --events FILE     a JSON array of events, or NDJSON (one per line); - reads stdin
  --policy FILE     the access policy (default: POLICY_FILE)
  --batch-size N    events per pipeline batch, 1 to 1000 (default 100)
  --json            the report as JSON on stdout
  --verbose         the pipeline's log records on stderr, as JSON lines

Exit: 0 every event applied or ignored; 1 some failed (listed with why); 2 usage or configuration.`,
};

/** Per pipeline batch: long enough for a slow SWR, short enough that a hung run ends. */
const batchDeadlineMs = 15 * 60_000;
const defaultBatchSize = 100;

const userKeys = (event: PeopleEvent): string[] => [
  ...(event.user.id === undefined ? [] : [`id:${event.user.id}`]),
  ...(event.user.name === undefined ? [] : [`name:${event.user.name}`]),
];

const chunks = <T>(items: readonly T[], size: number): T[][] => {
  const result: T[][] = [];
  for (let start = 0; start < items.length; start += size) result.push(items.slice(start, start + size));
  return result;
};

interface RunState {
  failed: EventRunReport['failed'];
  changes: AuditRecord[];
  /** Labels of the events the pipeline finished (applied, or ignored by the store). */
  finished: string[];
  /** User keys held behind a retryable failure → the label of that failure. */
  held: Map<string, string>;
}

const runBatch = async (
  batch: readonly FileEvent[],
  deps: PipelineDeps,
  settings: { actor: string; concurrency: number; dryRun: boolean },
  state: RunState,
  now: () => Date,
): Promise<void> => {
  const runnable: FileEvent[] = [];
  for (const entry of batch) {
    const holder = userKeys(entry.event)
      .map((key) => state.held.get(key))
      .find((label) => label !== undefined);
    if (holder === undefined) runnable.push(entry);
    else
      state.failed.push({
        label: entry.label,
        eventId: entry.event.id,
        code: 'HELD',
        reason: `not applied: an earlier event of the same user (${holder}) failed`,
      });
  }
  if (runnable.length === 0) return;
  const records: PipelineRecord[] = runnable.map((entry) => ({
    messageId: entry.label,
    body: entry.body,
    groupId: groupOf(entry.event),
    receiveCount: 1,
  }));
  const report = await processRecords(records, deps, settings, now().getTime() + batchDeadlineMs);
  const byLabel = new Map(runnable.map((entry) => [entry.label, entry] as const));
  const failures: Array<MessageFailure & { retryable: boolean }> = [
    ...report.retried.map((failure) => ({ ...failure, retryable: true })),
    // No DLQ in the CLI: permanent failures come back as undeliverable.
    ...report.undeliverable.map((failure) => ({ ...failure, retryable: false })),
    ...report.deadLettered.map((failure) => ({ ...failure, retryable: false })),
  ];
  for (const failure of failures) {
    const entry = byLabel.get(failure.messageId);
    state.failed.push({
      label: failure.messageId,
      eventId: entry?.event.id,
      code: failure.error.code,
      reason: failure.error.message,
    });
    if (failure.retryable && entry !== undefined)
      for (const key of userKeys(entry.event)) if (!state.held.has(key)) state.held.set(key, entry.label);
  }
  state.finished.push(...report.applied);
  state.changes.push(...report.changes);
};

/** Sorts failures into file order (labels are `line N` or `[N]`). */
const fileOrder = (label: string): number => Number(/\d+/.exec(label)?.[0] ?? 0);

/** The run's report: the pipeline's own log records say which events the store ignored and why. */
const reportOf = (
  command: EventCommand,
  file: EventsFile,
  state: RunState,
  lines: ReadonlyArray<{ message: string } & Record<string, unknown>>,
  options: { store: EventRunReport['store']; dryRun: boolean },
): EventRunReport => {
  const labelOf = new Map(file.events.map((entry) => [entry.event.id, entry.label] as const));
  const ignored: EventRunReport['ignored'] = [];
  const unknownTeams = new Set<string>();
  const warnings: string[] = [];
  for (const record of lines) {
    if (record.message === 'event ignored' && typeof record.eventId === 'string')
      ignored.push({
        label: labelOf.get(record.eventId) ?? record.eventId,
        eventId: record.eventId,
        status: String(record.status),
        reason: typeof record.reason === 'string' ? record.reason : undefined,
      });
    if (record.message.startsWith('team not in the policy') && typeof record.team === 'string')
      unknownTeams.add(record.team);
    if (record.message.startsWith('audit records could not be stored'))
      warnings.push(`audit records could not be stored: ${String(record.error)}`);
  }
  const ignoredLabels = new Set(ignored.map((entry) => entry.label));
  const failed = [
    ...file.problems.map((problem) => ({ ...problem, eventId: undefined })),
    ...state.failed,
  ].sort((a, b) => fileOrder(a.label) - fileOrder(b.label));
  return {
    command,
    store: options.store,
    dryRun: options.dryRun,
    events: {
      read: file.events.length + file.problems.length + file.duplicates.length,
      invalid: file.problems.length,
      duplicates: file.duplicates.length,
      processed: file.events.length,
    },
    applied: state.finished.filter((label) => !ignoredLabels.has(label)).length,
    ignored,
    failed,
    duplicates: file.duplicates,
    calls: callsOf(state.changes),
    unknownTeams: [...unknownTeams].sort(),
    warnings,
  };
};

/**
 * @example const exit = await runEventCommand('plan', ['--events', 'events.ndjson', '--json'], io);
 */
const runEventCommand = async (command: EventCommand, argv: string[], io: CliIo): Promise<ExitCode> => {
  const usage = usages[command];
  const parsed = parseCommandArgs(argv, options, usage, 0);
  if (parsed.help) {
    line(io.stdout, usage);
    return ExitCodes.ok;
  }
  const eventsPath = requiredString(parsed, 'events', usage);
  const batchSize =
    command === 'plan'
      ? Number.POSITIVE_INFINITY
      : (intValue(parsed, 'batch-size', { min: 1, max: 1000 }, usage) ?? defaultBatchSize);
  const json = flag(parsed, 'json');
  const now = io.now ?? (() => new Date());
  const config = readCliConfig(io.env, { policyFile: stringValue(parsed, 'policy') });
  const file = await readEventsFile(eventsPath, io.stdin, now());

  const swr = await openSwr(config, io);
  try {
    const stores = openStores(config.tableName, io, command);
    try {
      const dryRun = command === 'plan' || config.dryRun;
      if (command === 'apply' && config.dryRun)
        line(io.stderr, 'apply: DRY_RUN is set: the store records the facts, SWR is not changed');
      const telemetry = cliTelemetry(io, flag(parsed, 'verbose'));
      const store = command === 'plan' ? createReadOnlyStore(stores.store, now) : stores.store;
      const deps: PipelineDeps = {
        swr: swr.swr,
        directory: swr.directory,
        store,
        policy: swr.policy,
        deadLetters: undefined,
        log: telemetry.log,
        metrics: telemetry.metrics,
        ...(command === 'apply' ? { audit: (records, options) => stores.audit.write(records, options) } : {}),
        // A plan never moves a sweep's cursor: it keeps its own progress, in memory.
        ...(command === 'apply' ? { sweepProgress: stores.sweepProgress } : {}),
        knownIdsByName: (name) => stores.audit.userIdsByName(name),
        now,
      };
      const settings = { actor: `swr-access ${command}`, concurrency: config.swrConcurrency, dryRun };
      const state: RunState = { failed: [], changes: [], finished: [], held: new Map() };
      const batches = batchSize === Number.POSITIVE_INFINITY ? [file.events] : chunks(file.events, batchSize);
      for (const [index, batch] of batches.entries()) {
        if (batch.length === 0) continue;
        line(io.stderr, `${command}: batch ${index + 1}/${batches.length}: ${batch.length} events…`);
        await runBatch(batch, deps, settings, state, now);
      }

      const report = reportOf(command, file, state, telemetry.lines, { store: stores.kind, dryRun });
      if (json) writeJson(io.stdout, report);
      else writeEventRunText(io.stdout, report);
      for (const warning of report.warnings) line(io.stderr, `${command}: warning: ${warning}`);
      if (stores.kind === 'memory' && command === 'apply')
        line(io.stderr, 'apply: the memory store and its audit records end with this run');
      return report.failed.length > 0 ? ExitCodes.failed : ExitCodes.ok;
    } finally {
      stores.close();
    }
  } finally {
    await swr.close();
  }
};

export type { EventCommand };
export { runEventCommand, usages as eventCommandUsages };

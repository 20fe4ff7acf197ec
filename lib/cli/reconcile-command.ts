/**
 * `reconcile`: the scheduled reconcile run (lib/reconcile), on demand. Needs the real membership
 * table: against an empty store every stale grant on an exclusive target would look revocable.
 */
import { formatReconcileTable, GuardStatuses, runReconcile } from '../reconcile/index.ts';
import { flag, parseCommandArgs, stringValue } from './args.ts';
import { changesByUser, changesByUserLines } from './changes-by-user.ts';
import { type CliIo, type ExitCode, ExitCodes, line, writeJson } from './io.ts';
import { cliTelemetry, openStores, openSwr, readCliConfig } from './services.ts';

const reconcileUsage = `usage: swr-access reconcile [--dry-run] [--allow-mass-revoke] [--policy FILE] [--json] [--verbose]

Makes the actual permissions of every policy target match the membership store (TABLE_NAME) and
the policy, with the same planner as the functions. The mass-revoke guard (MASS_REVOKE_MAX_COUNT,
MASS_REVOKE_MAX_SHARE) stops a run that would revoke too much, unless --allow-mass-revoke. After
the per-target table it lists every user affected and what changes for each (and why).

Preview of a policy change: \`reconcile --dry-run --policy NEW.yaml\` plans the whole run against
the new policy and the real store and SWR, writes nothing, and lists who would gain, lose or
change access where. Targets only the old policy names are not looked at (see the table's note).

  --dry-run             plan and report; change nothing (also when DRY_RUN is set)
  --allow-mass-revoke   apply a plan the guard would stop (a person decided it is right)
  --policy FILE         the access policy (default: POLICY_FILE)
  --json                the report as JSON on stdout (else a table)
  --verbose             log records on stderr, as JSON lines

Exit: 0 reconciled; 1 the guard blocked the run, or a target was skipped or failed; 2 usage or
configuration.`;

/** A whole reconcile must end well before anyone gives up on a terminal. */
const runDeadlineMs = 30 * 60_000;

/** @example await reconcileCommand(['--dry-run', '--json'], io) */
const reconcileCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  const parsed = parseCommandArgs(
    argv,
    {
      'dry-run': { type: 'boolean' },
      'allow-mass-revoke': { type: 'boolean' },
      policy: { type: 'string' },
      json: { type: 'boolean' },
      verbose: { type: 'boolean' },
    },
    reconcileUsage,
    0,
  );
  if (parsed.help) {
    line(io.stdout, reconcileUsage);
    return ExitCodes.ok;
  }
  const now = io.now ?? (() => new Date());
  const config = readCliConfig(io.env, { policyFile: stringValue(parsed, 'policy'), requireTable: true });
  const swr = await openSwr(config, io);
  try {
    const stores = openStores(config.tableName, io, 'reconcile');
    try {
      const dryRun = flag(parsed, 'dry-run') || config.dryRun;
      const telemetry = cliTelemetry(io, flag(parsed, 'verbose'));
      line(
        io.stderr,
        `reconcile: ${dryRun ? 'dry run: ' : ''}reading every target of ${config.policyS3?.uri ?? config.policyFile}…`,
      );
      const report = await runReconcile(
        {
          swr: swr.swr,
          store: stores.store,
          policy: swr.policy,
          log: telemetry.log,
          metrics: telemetry.metrics,
          audit: (records) => stores.audit.write(records),
          sweepProgress: stores.sweepProgress,
          now,
        },
        {
          dryRun,
          allowMassRevoke: flag(parsed, 'allow-mass-revoke'),
          massRevoke: config.massRevoke,
          concurrency: config.swrConcurrency,
          deadline: now().getTime() + runDeadlineMs,
          actor: 'swr-access reconcile',
        },
      );
      const affected = changesByUser(report.changes);
      const verb = dryRun || report.guard.status === GuardStatuses.blocked ? 'would change' : 'changed';
      if (flag(parsed, 'json')) writeJson(io.stdout, { ...report, usersAffected: affected });
      else {
        line(io.stdout, formatReconcileTable(report).trimEnd());
        line(io.stdout);
        // A blocked run reports the changes of its first plan (none applied): who it would touch, and why.
        for (const text of changesByUserLines(affected, verb)) line(io.stdout, text);
      }
      const blocked = report.guard.status === GuardStatuses.blocked;
      if (blocked)
        line(
          io.stderr,
          `reconcile: the mass-revoke guard stopped the run; nothing was applied: ${report.guard.reason ?? 'over a limit'}`,
        );
      return blocked || !report.ok ? ExitCodes.failed : ExitCodes.ok;
    } finally {
      stores.close();
    }
  } finally {
    await swr.close();
  }
};

export { reconcileCommand, reconcileUsage };

/**
 * How `plan` and `apply` show what they did: the SWR calls (one per target and action, as the
 * planner coalesces them) rebuilt from the pipeline's change records, the events ignored and the
 * events that failed, as text for a person or JSON for a script.
 */
import { type AuthLevel, type PlanAction, permissionOfLevel, targetKey } from '../domain.ts';
import type { AuditRecord } from '../observability.ts';
import type { FileDuplicate } from './events-file.ts';
import { line, type TextSink, table } from './io.ts';

type LevelName = 'read' | 'write' | 'manage' | null;

interface CallView {
  target: string;
  targetKind: 'repo' | 'namespace';
  action: PlanAction;
  users: Array<{ userId: string; userName: string; before: LevelName; after: LevelName }>;
}

interface EventRunReport {
  command: 'plan' | 'apply';
  store: 'dynamodb' | 'memory';
  /** True for `plan`, and for `apply` under DRY_RUN: no SWR write was made. */
  dryRun: boolean;
  events: { read: number; invalid: number; duplicates: number; processed: number };
  /** Events the store applied and whose SWR changes were made (or planned). */
  applied: number;
  /** Events the store did not apply (stale, duplicate, superseded by offboarding). */
  ignored: Array<{ label: string; eventId: string; status: string; reason: string | undefined }>;
  /** Events that could not be read or processed: the run exits 1. */
  failed: Array<{ label: string; eventId: string | undefined; code: string; reason: string }>;
  duplicates: FileDuplicate[];
  calls: CallView[];
  /** Teams named by events but not by the policy: recorded, nothing granted. */
  unknownTeams: string[];
  warnings: string[];
}

const levelName = (level: AuthLevel | undefined): LevelName =>
  level === undefined ? null : permissionOfLevel(level);

const actionOf = (record: AuditRecord): PlanAction =>
  record.before === undefined ? 'grant' : record.after === undefined ? 'revoke' : 'change';

/**
 * Groups change records back into calls, in the planner's order (first seen first).
 *
 * @example callsOf(report.changes)[0] // { target: 'core/api/server', action: 'grant', users: [...] }
 */
const callsOf = (changes: readonly AuditRecord[]): CallView[] => {
  const calls = new Map<string, CallView>();
  for (const change of changes) {
    const action = actionOf(change);
    const key = `${change.target.kind}:${targetKey(change.target)}:${action}`;
    const call = calls.get(key) ?? {
      target: targetKey(change.target),
      targetKind: change.target.kind,
      action,
      users: [],
    };
    call.users.push({
      userId: change.userId,
      userName: change.userName,
      before: levelName(change.before),
      after: levelName(change.after),
    });
    calls.set(key, call);
  }
  return [...calls.values()];
};

const userText = (call: CallView): string =>
  call.users
    .map((user) =>
      call.action === 'grant'
        ? `${user.userName} → ${user.after}`
        : call.action === 'revoke'
          ? `${user.userName} (was ${user.before})`
          : `${user.userName} ${user.before} → ${user.after}`,
    )
    .join(', ');

const plural = (count: number, word: string): string => `${count} ${word}${count === 1 ? '' : 's'}`;

/** The report as text on stdout (warnings go to stderr, from the command). */
const writeEventRunText = (sink: TextSink, report: EventRunReport): void => {
  const { events } = report;
  const verb =
    report.command === 'plan'
      ? 'planned (nothing written)'
      : report.dryRun
        ? 'planned (DRY_RUN: no SWR write)'
        : 'made';
  line(
    sink,
    `${report.command}: ${plural(events.read, 'event')} read, ${events.invalid} invalid, ${plural(
      events.duplicates,
      'duplicate',
    )} dropped, ${events.processed} processed; ${report.applied} applied, ${report.ignored.length} ignored, ${
      report.failed.length
    } failed; ${plural(report.calls.length, 'SWR call')} ${verb}`,
  );
  if (report.calls.length > 0) {
    line(sink);
    for (const row of table([
      ['TARGET', 'ACTION', 'USERS'],
      ...report.calls.map((call) => [call.target, call.action, userText(call)]),
    ]))
      line(sink, `  ${row}`);
  }
  if (report.ignored.length > 0) {
    line(sink);
    line(sink, 'ignored:');
    for (const entry of report.ignored)
      line(
        sink,
        `  ${entry.label} (${entry.eventId}): ${entry.status}${entry.reason ? ` — ${entry.reason}` : ''}`,
      );
  }
  if (report.duplicates.length > 0) {
    line(sink);
    line(sink, 'duplicates dropped:');
    for (const entry of report.duplicates)
      line(sink, `  ${entry.label}: event id ${entry.eventId} already at ${entry.firstLabel}`);
  }
  if (report.unknownTeams.length > 0) {
    line(sink);
    line(sink, `teams not in the policy (recorded, nothing granted): ${report.unknownTeams.join(', ')}`);
  }
  if (report.failed.length > 0) {
    line(sink);
    line(sink, 'failed:');
    for (const entry of report.failed)
      line(
        sink,
        `  ${entry.label}${entry.eventId === undefined ? '' : ` (${entry.eventId})`}: ${entry.code}: ${entry.reason.replace(/\s*\n\s*/g, '; ')}`,
      );
  }
};

export type { CallView, EventRunReport, LevelName };
export { callsOf, levelName, writeEventRunText };

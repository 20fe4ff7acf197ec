/**
 * `show-user`: what the membership store knows of one user, as the functions will act on it:
 * every team fact (current, left, expired) with the event and instant that set it, the pending
 * future-effective events, the tombstone, the staleness watermarks and the next change the
 * scheduled run will make by itself. Reads the store only (no IAM, no SWR call).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createDynamoAuditStore } from '../audit/index.ts';
import { factTime, isMemberAt, nextChangeAt } from '../core/membership.ts';
import { userIdRule } from '../core/names.ts';
import type { MembershipStorePort, ResolvedEvent, UserRecord } from '../domain.ts';
import type { SweepProgress } from '../offboarding/progress.ts';
import { createDynamoStore } from '../store/index.ts';
import { createDynamoSweepProgress } from '../store/sweep-progress.ts';
import { flag, parseCommandArgs } from './args.ts';
import { type CliIo, type ExitCode, ExitCodes, line, table, UsageError, writeJson } from './io.ts';
import { requireTableName } from './services.ts';

const showUserUsage = `usage: swr-access show-user ID|NAME [--json]

What the membership store (TABLE_NAME) knows of one user: each team fact (member or left, the
instant and the event that set it, when a membership expires), pending events that take effect
later, the offboarding tombstone, the watermarks older events are judged against, and the next
change the scheduled reconcile makes by itself. A 32-hex value is an IAM user id; anything else is
a user name, looked up in the audit name index, then among the stored users.

Exit: 0 shown; 1 no such user in the store; 2 usage or configuration.`;

type TeamState = 'member' | 'left' | 'expired';

interface TeamView {
  team: string;
  state: TeamState;
  /** The instant of the fact (its `effectiveAt`, else `occurredAt`): older facts are ignored. */
  at: string;
  eventId: string;
  expiresAt: string | null;
}

interface PendingView {
  eventId: string;
  type: ResolvedEvent['type'];
  teams: string[];
  effectiveAt: string;
}

interface UserView {
  userId: string;
  userName: string;
  version: number;
  updatedAt: string | null;
  /** Teams the user is a member of now. */
  currentTeams: string[];
  teams: TeamView[];
  pending: PendingView[];
  /** When the user left the company (a join older than this is ignored; a newer one is a rehire). */
  offboardedAt: string | null;
  /** The newest `user.teams` snapshot: a team it did not list counts as left at that instant. */
  snapshotAt: string | null;
  nextChange: { at: string; what: string } | null;
  /**
   * The offboarding sweep for the tombstone: how far it got and, once finished, the proof that
   * every policy target and every repository of the managed namespaces was read back without a
   * grant of the user.
   */
  offboarding: {
    sweepStartedAt: string;
    targetsChecked: number;
    namespaces: Record<string, 'done' | 'in progress'>;
    policyTargets: 'done' | 'in progress';
    provenAt: string | null;
  } | null;
}

const teamsOf = (event: ResolvedEvent): string[] =>
  event.type === 'user.teams' ? event.teams : 'team' in event ? [event.team] : [];

/** What happens at the record's next change, in words. */
const describeNextChange = (record: UserRecord, at: string): string => {
  const instant = Date.parse(at);
  const due = (record.pending ?? []).find((event) => Date.parse(factTime(event)) === instant);
  if (due !== undefined) {
    const teams = teamsOf(due);
    return `pending ${due.type} ${due.id}${teams.length > 0 ? ` (${teams.join(', ')})` : ''} takes effect`;
  }
  const expiring = Object.entries(record.teams)
    .filter(
      ([, fact]) => fact.member && fact.expiresAt !== undefined && Date.parse(fact.expiresAt) === instant,
    )
    .map(([team]) => team)
    .sort();
  return `membership of ${expiring.join(', ')} expires`;
};

/**
 * The record as a person reads it, at `now`.
 *
 * @example userView(record, new Date()).currentTeams // ['platform']
 */
const userView = (record: UserRecord, now: Date, sweep?: SweepProgress): UserView => {
  const teams = Object.entries(record.teams)
    .map(([team, fact]): TeamView => {
      const state: TeamState = isMemberAt(fact, now) ? 'member' : fact.member ? 'expired' : 'left';
      return { team, state, at: fact.at, eventId: fact.eventId, expiresAt: fact.expiresAt ?? null };
    })
    .sort((a, b) => (a.team < b.team ? -1 : a.team > b.team ? 1 : 0));
  const next = nextChangeAt(record);
  return {
    userId: record.userId,
    userName: record.userName,
    version: record.version,
    updatedAt: record.updatedAt ?? null,
    currentTeams: teams.filter((team) => team.state === 'member').map((team) => team.team),
    teams,
    pending: (record.pending ?? []).map((event) => ({
      eventId: event.id,
      type: event.type,
      teams: teamsOf(event),
      effectiveAt: factTime(event),
    })),
    offboardedAt: record.offboardedAt ?? null,
    snapshotAt: record.snapshotAt ?? null,
    nextChange: next === undefined ? null : { at: next, what: describeNextChange(record, next) },
    offboarding:
      sweep === undefined || sweep.offboardedAt !== record.offboardedAt
        ? null
        : {
            sweepStartedAt: sweep.startedAt,
            targetsChecked: sweep.checked,
            namespaces: Object.fromEntries(
              Object.entries(sweep.namespaces).map(([ns, state]) => [
                ns,
                state.done ? 'done' : 'in progress',
              ]),
            ),
            policyTargets: sweep.policyDone ? 'done' : 'in progress',
            provenAt: sweep.finishedAt ?? null,
          },
  };
};

/** The view as text. */
const userViewLines = (view: UserView): string[] => {
  const out = [
    `user ${view.userName} (${view.userId}): store version ${view.version}${view.updatedAt === null ? '' : `, written ${view.updatedAt}`}`,
    `current teams: ${view.currentTeams.length === 0 ? 'none' : view.currentTeams.join(', ')}`,
    `tombstone: ${view.offboardedAt === null ? 'none' : `offboarded at ${view.offboardedAt} (older joins are ignored; a newer one is a rehire)`}`,
    `snapshot watermark: ${view.snapshotAt === null ? 'none' : `${view.snapshotAt} (a team the user.teams snapshot did not list counts as left then)`}`,
  ];
  if (view.teams.length === 0) out.push('team facts: none');
  else {
    out.push('team facts (a fact older than the one stored for its team is ignored):');
    for (const row of table([
      ['TEAM', 'STATE', 'FACT AT', 'EVENT', 'EXPIRES'],
      ...view.teams.map((team) => [team.team, team.state, team.at, team.eventId, team.expiresAt ?? '-']),
    ]))
      out.push(`  ${row}`);
  }
  if (view.pending.length === 0) out.push('pending events: none');
  else {
    out.push('pending events (take effect later; the scheduled reconcile applies them when due):');
    for (const row of table([
      ['EFFECTIVE AT', 'TYPE', 'TEAMS', 'EVENT'],
      ...view.pending.map((event) => [
        event.effectiveAt,
        event.type,
        event.teams.length === 0 ? '-' : event.teams.join(', '),
        event.eventId,
      ]),
    ]))
      out.push(`  ${row}`);
  }
  out.push(
    `next change: ${view.nextChange === null ? 'none scheduled' : `${view.nextChange.at}: ${view.nextChange.what}`}`,
  );
  if (view.offboarding !== null) {
    const sweep = view.offboarding;
    const namespaces = Object.entries(sweep.namespaces)
      .map(([ns, state]) => `${ns} ${state}`)
      .join(', ');
    out.push(
      sweep.provenAt === null
        ? `offboarding sweep: in progress since ${sweep.sweepStartedAt}, ${sweep.targetsChecked} targets checked (policy targets ${sweep.policyTargets}${namespaces === '' ? '' : `; ${namespaces}`})`
        : `offboarding proven at ${sweep.provenAt}: ${sweep.targetsChecked} targets read back without a grant of the user (every policy target; managed namespaces ${namespaces})`,
    );
  }
  return out;
};

/**
 * The user ids an argument stands for: itself when it is an id the store knows, else the ids the
 * audit name index holds for that name, else stored users of that name (a Scan of the table).
 */
const findUserIds = async (
  store: MembershipStorePort,
  namesIndex: { userIdsByName(name: string): Promise<string[]> },
  who: string,
): Promise<string[]> => {
  if (userIdRule(who) === undefined && (await store.get(who)) !== undefined) return [who];
  const indexed = await namesIndex.userIdsByName(who);
  const known: string[] = [];
  for (const userId of indexed) if ((await store.get(userId)) !== undefined) known.push(userId);
  if (known.length > 0) return known;
  const scanned: string[] = [];
  for await (const record of store.list()) if (record.userName === who) scanned.push(record.userId);
  return scanned.sort();
};

/** @example await showUserCommand(['alice', '--json'], io) */
const showUserCommand = async (argv: string[], io: CliIo): Promise<ExitCode> => {
  const parsed = parseCommandArgs(argv, { json: { type: 'boolean' } }, showUserUsage, 1);
  if (parsed.help) {
    line(io.stdout, showUserUsage);
    return ExitCodes.ok;
  }
  const who = parsed.positionals[0];
  if (who === undefined || who === '') throw new UsageError('the user ID or NAME is required', showUserUsage);
  const tableName = requireTableName(io.env);
  const client = io.aws?.dynamo ?? new DynamoDBClient({});
  try {
    const store = createDynamoStore({ client, tableName });
    const sweeps = createDynamoSweepProgress({ client, tableName });
    const userIds = await findUserIds(store, createDynamoAuditStore({ client, tableName }), who);
    const now = (io.now ?? (() => new Date()))();
    const views: UserView[] = [];
    for (const userId of userIds) {
      const record = await store.get(userId);
      if (record !== undefined)
        views.push(
          userView(record, now, record.offboardedAt === undefined ? undefined : await sweeps.get(userId)),
        );
    }
    if (flag(parsed, 'json')) writeJson(io.stdout, { user: who, at: now.toISOString(), users: views });
    else if (views.length === 0) line(io.stdout, `show-user: the store knows no user ${who}`);
    else
      views.forEach((view, index) => {
        if (index > 0) line(io.stdout);
        for (const text of userViewLines(view)) line(io.stdout, text);
      });
    return views.length === 0 ? ExitCodes.failed : ExitCodes.ok;
  } finally {
    if (io.aws?.dynamo === undefined) client.destroy();
  }
};

export type { UserView };
export { showUserCommand, showUserUsage, userView, userViewLines };

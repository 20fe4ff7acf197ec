/**
 * `npm start`'s account of every event it sent: applied (with how many SWR changes), ignored as
 * stale, a duplicate, deferred until it takes effect, superseded by an offboarding, or
 * dead-lettered with the reason. Built from what the run left behind — the pipeline's log records
 * (the same ones CloudWatch gets), every message read from the DLQs, and the file itself — so an
 * event the summary cannot account for shows as such instead of being counted as applied.
 */
import { ApplyStatuses } from '../domain.ts';
import type { EventsFileEntry } from '../events-file.ts';
import type { DeadLetterView } from './stack.ts';

const OutcomeKinds = {
  applied: 'applied',
  stale: 'ignored as stale',
  duplicate: 'duplicate',
  deferred: 'deferred',
  superseded: 'superseded by offboarding',
  deadLettered: 'dead-lettered',
  /** An offboarding whose known grants were revoked, but whose sweep ended in the sweep DLQ. */
  sweepDeadLettered: 'known grants revoked, sweep dead-lettered',
  /** Neither applied, ignored nor found in a DLQ: should never be seen; says so if it is. */
  unaccounted: 'not accounted for',
} as const;

type OutcomeKind = (typeof OutcomeKinds)[keyof typeof OutcomeKinds];

interface EventOutcome {
  /** Where the event is in the file (`line 3`, `[2]`). */
  label: string;
  /** The event id, when the body has one. */
  eventId: string | undefined;
  /** The event in a few words: type, user, team(s). */
  what: string;
  outcome: OutcomeKind;
  /** Why, or what it did. */
  detail: string;
}

type LogLine = { level: string; message: string } & Record<string, unknown>;

const asRecord = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;

const parse = (body: string): Record<string, unknown> | undefined => {
  try {
    return asRecord(JSON.parse(body));
  } catch {
    return undefined;
  }
};

const describeEvent = (event: Record<string, unknown> | undefined): string => {
  if (event === undefined) return '(not JSON)';
  const user = asRecord(event.user);
  const who = String(user?.name ?? user?.id ?? '?');
  const teams = Array.isArray(event.teams)
    ? ` [${event.teams.map(String).join(', ')}]`
    : typeof event.team === 'string'
      ? ` ${event.team}`
      : '';
  return `${String(event.type ?? '?')} ${who}${teams}`;
};

const ignoredKinds: Record<string, OutcomeKind> = {
  [ApplyStatuses.stale]: OutcomeKinds.stale,
  [ApplyStatuses.duplicate]: OutcomeKinds.duplicate,
  [ApplyStatuses.supersededByOffboarding]: OutcomeKinds.superseded,
};

/** How each leaver's sweep ended (by user id and by name): proven, or dead-lettered with why. */
const sweepsOf = (lines: readonly LogLine[], letters: readonly DeadLetterView[]) => {
  const proven = new Map<string, number>();
  for (const line of lines)
    if (line.message === 'offboarding proven') {
      const checked = typeof line.checked === 'number' ? line.checked : 0;
      if (typeof line.userId === 'string') proven.set(line.userId, checked);
      if (typeof line.userName === 'string') proven.set(line.userName, checked);
    }
  const dead = new Map<string, string>();
  for (const letter of letters)
    if (letter.queue === 'offboardingSweeps') {
      const userId = parse(letter.body)?.userId;
      if (typeof userId === 'string')
        dead.set(
          userId,
          `${letter.attributes.errorCode ?? '?'}: ${letter.attributes.errorMessage ?? ''} [offboardingSweeps DLQ]`,
        );
    }
  return { proven, dead };
};

/**
 * One outcome per entry of the events file, in file order.
 *
 * @example eventOutcomes(entries, telemetry.lines, await stack.deadLetters({ remove: true }))
 */
const eventOutcomes = (
  entries: readonly EventsFileEntry[],
  lines: readonly LogLine[],
  letters: readonly DeadLetterView[],
): EventOutcome[] => {
  const changes = new Map<string, number>();
  const ignored = new Map<string, { status: string; reason: string | undefined }>();
  const deferred = new Map<string, string | undefined>();
  const tookEffect = new Set<string>();
  const unknownTeams = new Map<string, string[]>();
  for (const line of lines) {
    if (line.audit === true && Array.isArray(line.eventIds))
      for (const id of line.eventIds) changes.set(String(id), (changes.get(String(id)) ?? 0) + 1);
    const eventId = typeof line.eventId === 'string' ? line.eventId : undefined;
    if (eventId === undefined) continue;
    const reason = typeof line.reason === 'string' ? line.reason : undefined;
    if (line.message === 'event ignored') ignored.set(eventId, { status: String(line.status), reason });
    else if (line.message === 'event deferred until it takes effect') deferred.set(eventId, reason);
    else if (line.message === 'time-bound fact took effect') tookEffect.add(eventId);
    else if (line.message.startsWith('team not in the policy') && typeof line.team === 'string')
      unknownTeams.set(eventId, [...(unknownTeams.get(eventId) ?? []), line.team]);
  }
  const sweeps = sweepsOf(lines, letters);
  const unmatchedLetters = letters.filter((letter) => letter.queue !== 'offboardingSweeps');
  const firstSeen = new Map<string, string>();
  return entries.map((entry): EventOutcome => {
    const event = parse(entry.body);
    const eventId = typeof event?.id === 'string' ? event.id : undefined;
    const base = { label: entry.label, eventId, what: describeEvent(event) };
    const letterIndex = unmatchedLetters.findIndex((letter) => letter.body === entry.body);
    if (letterIndex >= 0) {
      const [letter] = unmatchedLetters.splice(letterIndex, 1);
      const attributes = letter?.attributes ?? {};
      return {
        ...base,
        outcome: OutcomeKinds.deadLettered,
        detail: `${attributes.errorCode ?? '?'}: ${attributes.errorMessage ?? ''}${
          attributes.failedTarget ? ` (target ${attributes.failedTarget})` : ''
        } [${letter?.queue} DLQ]`.replace(/\s*\n\s*/g, '; '),
      };
    }
    const earlier = eventId === undefined ? undefined : firstSeen.get(eventId);
    if (eventId !== undefined && earlier === undefined) firstSeen.set(eventId, entry.label);
    if (earlier !== undefined)
      return {
        ...base,
        outcome: OutcomeKinds.duplicate,
        detail: `same event id as ${earlier}: the queue dropped it (deduplication), or the store ignored it`,
      };
    if (eventId === undefined)
      return { ...base, outcome: OutcomeKinds.unaccounted, detail: 'no event id, and not found in the DLQs' };
    const made = changes.get(eventId) ?? 0;
    const unknown = [...new Set(unknownTeams.get(eventId) ?? [])];
    const madeText = `${made} SWR change${made === 1 ? '' : 's'}${
      unknown.length === 0 ? '' : `; not in the policy (recorded, nothing granted): ${unknown.join(', ')}`
    }`;
    if (deferred.has(eventId))
      return tookEffect.has(eventId)
        ? { ...base, outcome: OutcomeKinds.applied, detail: `deferred, then took effect; ${madeText}` }
        : { ...base, outcome: OutcomeKinds.deferred, detail: deferred.get(eventId) ?? 'takes effect later' };
    const skipped = ignored.get(eventId);
    // A change recorded for the event means it was applied on an earlier delivery; a later
    // delivery then finds its id in the store ("duplicate") and rightly changes nothing more.
    if (skipped !== undefined && made === 0)
      return {
        ...base,
        outcome: ignoredKinds[skipped.status] ?? OutcomeKinds.stale,
        detail: skipped.reason ?? skipped.status,
      };
    if (event?.type === 'user.offboarded') {
      // The known grants are revoked by the event's own message; the rest by its sweep (a
      // message of the sweep queue): say how that ended, never "applied" over a failed sweep.
      const user = asRecord(event.user);
      const keys = [user?.id, user?.name].filter((key): key is string => typeof key === 'string');
      const dead = keys.map((key) => sweeps.dead.get(key)).find((why) => why !== undefined);
      if (dead !== undefined)
        return { ...base, outcome: OutcomeKinds.sweepDeadLettered, detail: `${madeText}; sweep: ${dead}` };
      const checked = keys.map((key) => sweeps.proven.get(key)).find((count) => count !== undefined);
      return {
        ...base,
        outcome: OutcomeKinds.applied,
        detail: `${madeText}; ${checked === undefined ? 'sweep not proven in this run (reconcile finishes it)' : `sweep proven (${checked} targets checked)`}`,
      };
    }
    return { ...base, outcome: OutcomeKinds.applied, detail: madeText };
  });
};

/** `8 applied, 1 ignored as stale, …` in a fixed order, zeros left out. */
const outcomeCounts = (outcomes: readonly EventOutcome[]): string =>
  Object.values(OutcomeKinds)
    .map((kind) => [kind, outcomes.filter((outcome) => outcome.outcome === kind).length] as const)
    .filter(([, count]) => count > 0)
    .map(([kind, count]) => `${count} ${kind}`)
    .join(', ');

export type { EventOutcome, OutcomeKind };
export { eventOutcomes, OutcomeKinds, outcomeCounts };

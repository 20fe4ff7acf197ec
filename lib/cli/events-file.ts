/**
 * Reads a file of people events for `plan` and `apply`: a JSON array, or NDJSON (one event per
 * line), from a path or stdin (`-`). Each event is checked on its own with the queue handlers'
 * parser; a bad one is reported by its place (`line 7`, `[3]`) and reason and does not stop the
 * others. An event id seen before is dropped (the producers' de-duplication, as SQS does).
 */
import { parseEventBody } from '../core/events.ts';
import type { PeopleEvent } from '../domain.ts';
import { readEventsText, type SplitEventsFile, splitEventsText } from '../events-file.ts';
import { UsageError } from './io.ts';

/** One valid event, with where it came from. */
interface FileEvent {
  /** `line 3` (NDJSON) or `[2]` (array): the message id in the pipeline and in every report. */
  label: string;
  body: string;
  event: PeopleEvent;
}

interface FileProblem {
  label: string;
  code: string;
  reason: string;
}

interface FileDuplicate {
  label: string;
  eventId: string;
  /** Where the id was first seen. */
  firstLabel: string;
}

interface EventsFile {
  format: 'array' | 'ndjson';
  events: FileEvent[];
  problems: FileProblem[];
  duplicates: FileDuplicate[];
}

/**
 * Splits and checks the text of an events file.
 *
 * @example
 * const file = parseEventsText('{"id":"e1",…}\n{"id":"e2",…}\n', new Date());
 * file.events.map((e) => e.label) // ['line 1', 'line 2']
 */
const parseEventsText = (text: string, now: Date): EventsFile => {
  let split: SplitEventsFile;
  try {
    split = splitEventsText(text);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const file: EventsFile = { format: split.format, events: [], problems: [], duplicates: [] };
  const firstSeen = new Map<string, string>();
  for (const entry of split.entries) {
    if (entry.jsonError !== undefined) {
      file.problems.push({ label: entry.label, code: 'INVALID_JSON', reason: entry.jsonError });
      continue;
    }
    const parsed = parseEventBody(entry.body, now);
    if (!parsed.ok) {
      file.problems.push({ label: entry.label, code: parsed.error.code, reason: parsed.error.message });
      continue;
    }
    const first = firstSeen.get(parsed.event.id);
    if (first !== undefined) {
      file.duplicates.push({ label: entry.label, eventId: parsed.event.id, firstLabel: first });
      continue;
    }
    firstSeen.set(parsed.event.id, entry.label);
    file.events.push({ label: entry.label, body: entry.body, event: parsed.event });
  }
  return file;
};

/**
 * Reads an events file (`-` = stdin). A file that cannot be read is a UsageError (exit 2).
 *
 * @example const file = await readEventsFile('events.ndjson', process.stdin, new Date());
 */
const readEventsFile = async (
  path: string,
  stdin: AsyncIterable<string | Uint8Array>,
  now: Date,
): Promise<EventsFile> => {
  let text: string;
  try {
    text = await readEventsText(path, stdin);
  } catch (error) {
    throw new UsageError((error as Error).message, undefined, { cause: error });
  }
  return parseEventsText(text, now);
};

/** The FIFO group of an event: the user, as the producers set it (id, else name). */
const groupOf = (event: PeopleEvent): string => event.user.id ?? `name:${event.user.name ?? ''}`;

export type { EventsFile, FileDuplicate, FileEvent, FileProblem };
export { groupOf, parseEventsText, readEventsFile };

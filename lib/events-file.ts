/**
 * The events file format shared by `npm start` and the CLI: a JSON array of events, or one event
 * per line (NDJSON); `-` reads standard input. This module only splits a file into message bodies,
 * each with its place (`line 7`, `[3]`) and, for a line that is not JSON, why: `npm start` sends
 * such a line as it is (the pipeline dead-letters it), the CLI reports it.
 */
import { readFile } from 'node:fs/promises';

interface EventsFileEntry {
  /** `line 3` (NDJSON) or `[2]` (array). */
  label: string;
  /** The message body as it would travel on the queue. */
  body: string;
  /** Set when an NDJSON line is not JSON. */
  jsonError: string | undefined;
}

interface SplitEventsFile {
  format: 'array' | 'ndjson';
  entries: EventsFileEntry[];
}

/** A file that cannot be split at all (a broken JSON array, an unreadable path). */
class EventsFileError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EventsFileError';
  }
}

/** V8's JSON messages quote the input; keep only the position. */
const jsonReason = (error: unknown): string => {
  const position = /position (\d+)/.exec(String((error as Error)?.message))?.[1];
  return `not valid JSON${position === undefined ? '' : ` (error at position ${position})`}`;
};

/**
 * A file whose first event is a JSON object spread over several lines (pretty-printed): read line
 * by line it would be a list of broken events. Found by joining lines from the first one until
 * they parse (an object of a few hundred lines at most); a first line that is simply broken,
 * in an NDJSON file, is left to the per-line report.
 */
const refusePrettyPrinted = (lines: readonly string[]): void => {
  const index = lines.findIndex((line) => line.trim() !== '');
  const first = (lines[index] ?? '').replace(/^\uFEFF/, '').trim();
  if (!first.startsWith('{')) return;
  const parses = (text: string): boolean => {
    try {
      JSON.parse(text);
      return true;
    } catch {
      return false;
    }
  };
  if (parses(first)) return;
  let joined = first;
  for (let end = index + 1; end < Math.min(lines.length, index + 500); end += 1) {
    joined += `\n${lines[end] ?? ''}`;
    if (parses(joined))
      throw new EventsFileError(
        `the events file holds a JSON object spread over several lines (pretty-printed, lines ${index + 1}-${end + 1}); ` +
          'an events file is a JSON array or one event per line. Wrap the events in [ ] (a JSON array), ' +
          'or write one event per line (NDJSON), e.g. jq -c . FILE > FILE.ndjson',
      );
  }
};

/**
 * @example splitEventsText('{"id":"e1"}\nnot json\n').entries.map((e) => e.label) // ['line 1', 'line 2']
 */
const splitEventsText = (text: string): SplitEventsFile => {
  const trimmed = text.replace(/^\uFEFF/, '').trimStart();
  if (trimmed.startsWith('[')) {
    let array: unknown;
    try {
      array = JSON.parse(trimmed);
    } catch (error) {
      // Nothing of a broken array can be trusted to be where it seems: refuse the whole file.
      throw new EventsFileError(`the events file is a JSON array that does not parse: ${jsonReason(error)}`);
    }
    if (!Array.isArray(array))
      throw new EventsFileError('the events file starts with [ but is not a JSON array');
    return {
      format: 'array',
      entries: array.map((item: unknown, index) => ({
        label: `[${index}]`,
        body: JSON.stringify(item),
        jsonError: undefined,
      })),
    };
  }
  const entries: EventsFileEntry[] = [];
  const lines = text.split(/\r?\n/);
  refusePrettyPrinted(lines);
  lines.forEach((raw, index) => {
    const line = index === 0 ? raw.replace(/^\uFEFF/, '') : raw;
    if (line.trim() === '') return;
    let jsonError: string | undefined;
    try {
      JSON.parse(line);
    } catch (error) {
      jsonError = jsonReason(error);
    }
    entries.push({ label: `line ${index + 1}`, body: line, jsonError });
  });
  return { format: 'ndjson', entries };
};

const readAll = async (stream: AsyncIterable<string | Uint8Array>): Promise<string> => {
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of stream)
    text += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
  return text + decoder.decode();
};

/** @example const text = await readEventsText('events.ndjson', process.stdin); */
const readEventsText = async (path: string, stdin: AsyncIterable<string | Uint8Array>): Promise<string> => {
  if (path === '-') return readAll(stdin);
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'read failed';
    throw new EventsFileError(`cannot read the events file ${path} (${code})`, { cause: error });
  }
};

export type { EventsFileEntry, SplitEventsFile };
export { EventsFileError, readEventsText, splitEventsText };

/**
 * The events file format shared by `npm start` and the CLI: a JSON array of events, or one event
 * per line (NDJSON); `-` reads standard input. This module only splits a file into message bodies,
 * each with its place (`line 7`, `[3]`) and, for an item that is not JSON, why: `npm start` sends
 * such an item as it is (the pipeline dead-letters it), the CLI reports it. Each item succeeds or
 * fails on its own.
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

/** Whether one item's text is JSON; parsing a hostile item must not take the others down. */
const jsonErrorOf = (text: string): string | undefined => {
  try {
    JSON.parse(text);
    return undefined;
  } catch (error) {
    return error instanceof RangeError ? 'nested too deeply to be read' : jsonReason(error);
  }
};

/**
 * The texts of the top-level items of a JSON array, found by a scan that tracks strings and
 * nesting without building anything: a file is cut into items before any item is parsed, so one
 * item nested a million levels deep (a stack overflow for a recursive parser) fails alone.
 * `undefined` when the text is not an array whose brackets and quotes balance.
 */
const arrayItemTexts = (text: string): string[] | undefined => {
  const items: string[] = [];
  let depth = 0;
  let inString = false;
  let start = 1;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i += 1;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') depth += 1;
    else if (c === ']' || c === '}') {
      depth -= 1;
      if (depth < 0) return undefined;
      if (depth === 0) {
        if (text.slice(i + 1).trim() !== '') return undefined;
        const last = text.slice(start, i).trim();
        if (last !== '') items.push(last);
        else if (items.length > 0) return undefined;
        return items;
      }
    } else if (c === ',' && depth === 1) {
      items.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  return undefined;
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
  const trimmed = text.replace(/^\uFEFF/, '').trim();
  if (trimmed.startsWith('[')) {
    const items = arrayItemTexts(trimmed);
    // Brackets or quotes that do not balance: nothing can be trusted to be where it seems.
    if (items === undefined)
      throw new EventsFileError(
        `the events file is a JSON array that does not parse: ${jsonErrorOf(trimmed) ?? 'unbalanced brackets'}`,
      );
    return {
      format: 'array',
      entries: items.map((item, index) => ({
        label: `[${index}]`,
        body: item,
        jsonError: item === '' ? 'an empty item (two commas in a row)' : jsonErrorOf(item),
      })),
    };
  }
  const entries: EventsFileEntry[] = [];
  const lines = text.split(/\r?\n/);
  refusePrettyPrinted(lines);
  lines.forEach((raw, index) => {
    const line = index === 0 ? raw.replace(/^\uFEFF/, '') : raw;
    if (line.trim() === '') return;
    entries.push({ label: `line ${index + 1}`, body: line, jsonError: jsonErrorOf(line) });
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

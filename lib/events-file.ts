/**
 * Reads a file of events: a JSON array, or one event per line (NDJSON); `-` reads standard input.
 * Each entry keeps its raw text so that a line that is not JSON can still travel as a message body
 * (the pipeline dead-letters it with its reason) or be reported with its line number.
 */
import { readFile } from 'node:fs/promises';

interface EventsFileEntry {
  /** 1-based line (NDJSON) or element index + 1 (JSON array), for messages. */
  position: number;
  /** The message body as it would travel on the queue. */
  body: string;
  /** The parsed value, when the entry is JSON. */
  value: unknown;
  parseError: string | undefined;
}

const readStdin = async (): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
};

/**
 * @example const entries = parseEventsText('[{"id":"e1",…}]');
 */
const parseEventsText = (text: string): EventsFileEntry[] => {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    let array: unknown;
    try {
      array = JSON.parse(trimmed);
    } catch (error) {
      throw new SyntaxError(
        `the events file looks like a JSON array but is not valid JSON: ${(error as Error).message}`,
      );
    }
    if (!Array.isArray(array))
      throw new SyntaxError('the events file must hold a JSON array or one event per line');
    return array.map((value, index) => ({
      position: index + 1,
      body: typeof value === 'string' ? value : JSON.stringify(value),
      value,
      parseError: undefined,
    }));
  }
  const entries: EventsFileEntry[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    if (line.trim() === '') return;
    try {
      entries.push({ position: index + 1, body: line, value: JSON.parse(line), parseError: undefined });
    } catch (error) {
      entries.push({
        position: index + 1,
        body: line,
        value: undefined,
        parseError: (error as Error).message,
      });
    }
  });
  return entries;
};

/** @example const entries = await readEventsFile(process.argv[2] ?? '-'); */
const readEventsFile = async (path: string): Promise<EventsFileEntry[]> =>
  parseEventsText(path === '-' ? await readStdin() : await readFile(path, 'utf8'));

export type { EventsFileEntry };
export { parseEventsText, readEventsFile };

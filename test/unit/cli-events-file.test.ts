import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupOf, parseEventsText, readEventsFile } from '../../lib/cli/events-file.ts';
import { UsageError } from '../../lib/cli/io.ts';

const now = new Date('2026-11-20T12:00:00Z');

/** A valid event; `n` makes id and time distinct. */
const eventFactory = (n: number, overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  id: `e${n}`,
  type: 'membership.added',
  occurredAt: `2026-11-20T10:00:0${n % 10}Z`,
  user: { name: 'alice' },
  team: 'backend',
  ...overrides,
});

const ndjson = (...lines: unknown[]): string =>
  lines.map((entry) => (typeof entry === 'string' ? entry : JSON.stringify(entry))).join('\n');

async function* chunksOf(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield new TextEncoder().encode(part);
}

describe('parseEventsText', () => {
  it.each([
    ['a JSON array', JSON.stringify([eventFactory(1), eventFactory(2)]), 'array', ['[0]', '[1]']],
    ['NDJSON', ndjson(eventFactory(1), eventFactory(2)), 'ndjson', ['line 1', 'line 2']],
    [
      'NDJSON with blank lines and CRLF',
      `\r\n${ndjson(eventFactory(1))}\r\n\r\n${ndjson(eventFactory(2))}\r\n`,
      'ndjson',
      ['line 2', 'line 4'],
    ],
    ['an array after a BOM and spaces', `\uFEFF  \n${JSON.stringify([eventFactory(1)])}`, 'array', ['[0]']],
  ])('reads %s', (_name, text, format, labels) => {
    // Act
    const file = parseEventsText(text, now);

    // Assess
    expect(file.format).toBe(format);
    expect(file.events.map((entry) => entry.label)).toEqual(labels);
    expect(file.problems).toEqual([]);
  });

  it('reports a line that is not JSON and a line that is not an event, and keeps the others', () => {
    // Prepare
    const text = ndjson(
      eventFactory(1),
      '{"id": "e2", oops',
      eventFactory(3, { type: 'user.promoted' }),
      eventFactory(4),
    );

    // Act
    const file = parseEventsText(text, now);

    // Assess
    expect(file.events.map((entry) => entry.event.id)).toEqual(['e1', 'e4']);
    expect(file.problems).toEqual([
      { label: 'line 2', code: 'INVALID_JSON', reason: expect.stringMatching(/^not valid JSON/) },
      { label: 'line 3', code: 'SCHEMA', reason: expect.stringContaining('type must be one of') },
    ]);
  });

  it.each([
    ['one pretty-printed event', JSON.stringify(eventFactory(1), null, 2), 'lines 1-9'],
    [
      'pretty-printed events one after the other',
      `\n${JSON.stringify(eventFactory(1), null, 2)}\n${JSON.stringify(eventFactory(2), null, 2)}`,
      'lines 2-10',
    ],
  ])('refuses %s, saying how to fix it', (_name, text, where) => {
    // Act
    const parse = () => parseEventsText(text, now);

    // Assess
    expect(parse).toThrow(UsageError);
    expect(parse).toThrow(`spread over several lines (pretty-printed, ${where})`);
    expect(parse).toThrow('Wrap the events in [ ] (a JSON array), or write one event per line (NDJSON)');
  });

  it('leaves a broken first line of NDJSON to the per-line report', () => {
    // Act
    const file = parseEventsText(ndjson('{"id": "e1", oops', eventFactory(2)), now);

    // Assess
    expect(file.problems.map((problem) => problem.label)).toEqual(['line 1']);
    expect(file.events.map((entry) => entry.label)).toEqual(['line 2']);
  });

  it('reports a bad array element by its index', () => {
    // Act
    const file = parseEventsText(JSON.stringify([eventFactory(1), { id: 'e2' }, 7]), now);

    // Assess
    expect(file.events.map((entry) => entry.label)).toEqual(['[0]']);
    expect(file.problems.map((problem) => [problem.label, problem.code])).toEqual([
      ['[1]', 'SCHEMA'],
      ['[2]', 'SCHEMA'],
    ]);
  });

  it('drops a repeated event id and says where it was first', () => {
    // Act
    const file = parseEventsText(
      ndjson(eventFactory(1), eventFactory(2), eventFactory(1, { team: 'sre' })),
      now,
    );

    // Assess
    expect(file.events.map((entry) => entry.label)).toEqual(['line 1', 'line 2']);
    expect(file.duplicates).toEqual([{ label: 'line 3', eventId: 'e1', firstLabel: 'line 1' }]);
  });

  it.each([
    ['a broken array', '[{"id": "e1"},'],
    ['an array that is an object', '[1] {'],
  ])('refuses %s as a whole with a UsageError', (_name, text) => {
    // Act / Assess
    expect(() => parseEventsText(text, now)).toThrow(UsageError);
  });

  it('never echoes a body in a reason', () => {
    // Prepare
    const secretish = 'hunter2-do-not-print';

    // Act
    const file = parseEventsText(
      ndjson(`{"id": "${secretish}", `, eventFactory(1, { extra: secretish })),
      now,
    );

    // Assess
    expect(file.problems).toHaveLength(2);
    expect(JSON.stringify(file.problems)).not.toContain(secretish);
  });
});

describe('readEventsFile', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'swr-access-events-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a file from disk', async () => {
    // Prepare
    const path = join(dir, 'events.ndjson');
    await writeFile(path, ndjson(eventFactory(1), eventFactory(2)));

    // Act
    const file = await readEventsFile(path, chunksOf(), now);

    // Assess
    expect(file.events.map((entry) => entry.event.id)).toEqual(['e1', 'e2']);
  });

  it('reads stdin for -, across chunk borders', async () => {
    // Prepare
    const text = JSON.stringify([eventFactory(1), eventFactory(2)]);

    // Act
    const file = await readEventsFile('-', chunksOf(text.slice(0, 17), text.slice(17)), now);

    // Assess
    expect(file.format).toBe('array');
    expect(file.events).toHaveLength(2);
  });

  it('refuses a file that does not exist with a UsageError', async () => {
    // Act / Assess
    await expect(readEventsFile(join(dir, 'missing.json'), chunksOf(), now)).rejects.toThrow(
      /cannot read the events file .*ENOENT/,
    );
  });
});

describe('groupOf', () => {
  it.each([
    [{ id: 'a11ce000000000000000000000000001', name: 'alice' }, 'a11ce000000000000000000000000001'],
    [{ name: 'alice' }, 'name:alice'],
  ])('groups %j as %s', (user, group) => {
    // Prepare
    const [entry] = parseEventsText(ndjson(eventFactory(1, { user })), now).events;

    // Act / Assess
    expect(groupOf(entry!.event)).toBe(group);
  });
});

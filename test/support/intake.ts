/**
 * Helpers for the intake tests: provider request samples, a recording event producer that can be
 * made to fail, an IAM directory over a fixed list, and a SCIM client over the service.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IamUser, PeopleEvent, UserDirectoryPort } from '../../lib/domain.ts';
import { EnqueueError, type EventProducer, type OutgoingEvent } from '../../lib/producer.ts';

/** A sample body from test/fixtures/intake, with SCIM ids of the samples replaced by ours. */
const sample = (name: string, replace: Record<string, string> = {}): unknown => {
  let text = readFileSync(join(import.meta.dirname, '../fixtures/intake', name), 'utf8');
  for (const [from, to] of Object.entries(replace)) text = text.replaceAll(from, to);
  return JSON.parse(text) as unknown;
};

/** Records what was sent; `failNext(n)` makes the next n sends fail as SQS would (retryable). */
const recordingProducer = () => {
  const sent: OutgoingEvent[] = [];
  let failures = 0;
  const producer: EventProducer = {
    async send(events) {
      if (failures > 0) {
        failures -= 1;
        throw new EnqueueError(
          events.map((_, index) => ({
            index,
            queue: 'accessChanges',
            code: 'InternalError',
            senderFault: false,
          })),
        );
      }
      sent.push(...events);
      return { sent: events.length, accessChanges: events.length, offboarding: 0 };
    },
  };
  return {
    producer,
    sent,
    events: (): PeopleEvent[] => sent.map((item) => item.event),
    /** `type user team` lines, in send order. */
    summary: (): string[] =>
      sent.map(
        ({ event }) =>
          `${event.type} ${event.user.name ?? event.user.id}${'team' in event ? ` ${event.team}` : ''}`,
      ),
    failNext: (count: number) => {
      failures = count;
    },
    clear: () => {
      sent.length = 0;
    },
  };
};

/** IAM by exact name, as the real directory answers; `down()` makes every look-up fail (retryable). */
const fixedDirectory = (users: IamUser[]) => {
  let down = false;
  let calls = 0;
  const directory: UserDirectoryPort = {
    findById: async (id) => users.find((user) => user.id === id),
    findByName: async (name) => {
      calls += 1;
      if (down) throw new TypeError('fetch failed');
      return users.find((user) => user.name === name);
    },
  };
  return {
    directory,
    add: (user: IamUser) => users.push(user),
    setDown: (value: boolean) => {
      down = value;
    },
    calls: () => calls,
  };
};

export { fixedDirectory, recordingProducer, sample };

/**
 * Helpers for the intake tests: provider request samples, a recording event producer that can be
 * made to fail, an IAM directory over a fixed list, and a SCIM client over the service.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IamUser, PeopleEvent, UserDirectoryPort } from '../../lib/domain.ts';
import { EnqueueError, type EventProducer, type OutgoingEvent } from '../../lib/producer.ts';
import { loadSeed, type SimulatorSeed } from '../../lib/sim/index.ts';

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

/** The IAM users the provider samples map to under test/fixtures/intake/policy.yaml (e-mail local part). */
const sampleUsers = {
  /** Entra's documented user: Test_User_11bb11bb-…@testuser.com */
  entra: { id: 'e1a0000000000000000000000000e001', name: 'test_user_11bb11bb-cc22-dd33-ee44-55ff55ff55ff' },
  /** Okta's documented SCIM user: test.user@okta.local */
  okta: { id: '0c1a000000000000000000000000c002', name: 'test.user' },
  /** Okta's System Log sample user: test@this.com */
  hook: { id: '0c1a000000000000000000000000c003', name: 'test' },
  /** Okta's deactivation sample user: johndoet@doesnotexist.com */
  leaver: { id: '0c1a000000000000000000000000c004', name: 'johndoet' },
} as const satisfies Record<string, IamUser>;

/** The demo seed plus the sample users. */
const intakeSeed = (): SimulatorSeed => {
  const seed = loadSeed();
  return { ...seed, users: [...seed.users, ...Object.values(sampleUsers)] };
};

const intakePolicyPath = join(import.meta.dirname, '../fixtures/intake/policy.yaml');

/** A JSON answer as tests read it: by the shape the protocol documents, checked by the assertions. */
// biome-ignore lint/suspicious/noExplicitAny: answers are read field by field and asserted on
type JsonAnswer = any;

interface HttpReply {
  status: number;
  body: JsonAnswer;
  text: string;
  headers: Headers;
}

const replyOf = async (response: Response): Promise<HttpReply> => {
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: response.status, body, text, headers: response.headers };
};

/**
 * A SCIM client as an identity provider is one: bearer token, JSON bodies, paths under /scim/v2.
 *
 * @example const scim = scimClient(intake.url, intake.scimToken); await scim('POST', '/Users', body);
 */
const scimClient =
  (baseUrl: string, token: string) =>
  async (method: string, path: string, body?: unknown): Promise<HttpReply> =>
    replyOf(
      await fetch(`${baseUrl}/scim/v2${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      }),
    );

/** Okta's side of an event hook: the configured Authorization header, GET to verify, POST to deliver. */
const oktaClient = (baseUrl: string, secret: string) => ({
  verify: async (challenge: string, authorization = secret): Promise<HttpReply> =>
    replyOf(
      await fetch(`${baseUrl}/hooks/okta`, {
        headers: { authorization, 'x-okta-verification-challenge': challenge },
      }),
    ),
  deliver: async (delivery: unknown, authorization = secret): Promise<HttpReply> =>
    replyOf(
      await fetch(`${baseUrl}/hooks/okta`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'application/json', accept: 'application/json' },
        body: typeof delivery === 'string' ? delivery : JSON.stringify(delivery),
      }),
    ),
});

/** A delivery of Okta's envelope around the given System Log events. */
const oktaDelivery = (events: unknown[]): unknown => ({
  eventType: 'com.okta.event_hook',
  eventTypeVersion: '1.0',
  cloudEventsVersion: '0.1',
  contentType: 'application/json',
  eventId: crypto.randomUUID(),
  eventTime: new Date().toISOString(),
  source: 'https://example.okta.com/api/v1/eventHooks/whoql0HfiLGPWc8Jx0g3',
  data: { events },
});

/** The first System Log event of a sample delivery, with fields replaced. */
const oktaEvent = (file: string, overrides: Record<string, unknown> = {}): Record<string, unknown> => {
  const delivery = sample(file) as { data: { events: Array<Record<string, unknown>> } };
  return { ...(delivery.data.events[0] as Record<string, unknown>), ...overrides };
};

export type { HttpReply, JsonAnswer };
export {
  fixedDirectory,
  intakePolicyPath,
  intakeSeed,
  oktaClient,
  oktaDelivery,
  oktaEvent,
  recordingProducer,
  replyOf,
  sample,
  sampleUsers,
  scimClient,
};

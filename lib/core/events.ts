/**
 * The people events that arrive on the queues: their schema, the parser every handler runs on a
 * message body, and the step that completes the user's identity through IAM.
 *
 * Parsing never throws: a bad body is a permanent failure of one message, never of its batch.
 */
import { z } from 'zod';
import type { CallOptions, IamUser, PeopleEvent, ResolvedEvent, UserDirectoryPort } from '../domain.ts';
import { ErrorCodes, EventParseError, UnknownUserError } from '../errors.ts';
import { userIdRule } from './names.ts';

/** SQS's historical message limit; anything larger is not one of ours and is never parsed. */
const maxBodyBytes = 256 * 1024;
/** A person reads the reason in the DLQ attributes; longer texts only hide the first problem. */
const maxReasonChars = 1000;
/** Producers' clocks drift, but not by a day: a later `occurredAt` would win every race. */
const maxFutureSkewMs = 24 * 60 * 60 * 1000;
const maxTeamsPerSnapshot = 1000;

const isoWithZone = z.iso.datetime({
  offset: true,
  error: 'must be an ISO 8601 date-time with a zone, e.g. 2026-11-20T10:00:00Z or 2026-11-20T11:00:00+01:00',
});

const teamPattern = /^[\p{L}\p{N}][\p{L}\p{N}._\-/: ]*$/u;

/** Returns the rule a team name breaks, or `undefined` (shared with the policy schema). */
const teamNameRule = (value: unknown): string | undefined => {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length < 1 || value.length > 128) return `must be 1 to 128 characters (got ${value.length})`;
  if (!teamPattern.test(value))
    return 'must start with a letter or digit and contain only letters, digits, spaces and . _ - / :';
  if (value.endsWith(' ')) return 'must not end with a space';
  return undefined;
};

const teamSchema = z.string().superRefine((value, ctx) => {
  const rule = teamNameRule(value);
  if (rule !== undefined) ctx.addIssue({ code: 'custom', message: `team ${rule}` });
});

/** IAM user names: letters, digits, spaces, `_`, `-`, `.`; never starting with a digit. */
const userNamePattern = /^[A-Za-z_\-. ][A-Za-z0-9_\-. ]*$/;

const userSchema = z
  .strictObject({
    id: z
      .string()
      .superRefine((value, ctx) => {
        const rule = userIdRule(value);
        if (rule !== undefined) ctx.addIssue({ code: 'custom', message: rule });
      })
      .optional(),
    name: z
      .string()
      .min(1, { error: 'must be 1 to 64 characters' })
      .max(64, { error: 'must be 1 to 64 characters' })
      .regex(userNamePattern, {
        error:
          'must be an IAM user name: letters, digits, spaces, underscores, hyphens and periods, not starting with a digit',
      })
      .optional(),
  })
  .refine((user) => user.id !== undefined || user.name !== undefined, {
    error: 'must carry the IAM user id, the IAM user name, or both',
  });

const common = {
  id: z
    .string()
    .min(1, { error: 'must be 1 to 128 characters' })
    .max(128, { error: 'must be 1 to 128 characters' })
    .regex(/^[^\p{Cc}]+$/u, { error: 'must not contain control characters' }),
  occurredAt: isoWithZone,
  effectiveAt: isoWithZone.optional(),
  source: z.string().max(128, { error: 'must be at most 128 characters' }).optional(),
  user: userSchema,
};

const eventSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({
      ...common,
      type: z.literal('membership.added'),
      team: teamSchema,
      expiresAt: isoWithZone.optional(),
    }),
    z.strictObject({ ...common, type: z.literal('membership.removed'), team: teamSchema }),
    z.strictObject({ ...common, type: z.literal('user.offboarded') }),
    z.strictObject({
      ...common,
      type: z.literal('user.teams'),
      teams: z
        .array(teamSchema)
        .max(maxTeamsPerSnapshot, { error: `must list at most ${maxTeamsPerSnapshot} teams` })
        .transform((teams) => [...new Set(teams)]),
    }),
  ],
  {
    error: (issue) =>
      issue.code === 'invalid_union'
        ? 'type must be one of membership.added, membership.removed, user.offboarded, user.teams'
        : undefined,
  },
);

type ParseResult = { ok: true; event: PeopleEvent } | { ok: false; error: EventParseError };

const truncate = (text: string): string =>
  text.length <= maxReasonChars ? text : `${text.slice(0, maxReasonChars - 1)}…`;

const fail = (
  message: string,
  code: typeof ErrorCodes.invalidJson | typeof ErrorCodes.schema,
): ParseResult => ({
  ok: false,
  error: new EventParseError(truncate(message), code),
});

/**
 * Parses and validates one message body. Never throws; never echoes the body in the reason.
 *
 * @example
 * const result = parseEventBody(record.body, new Date());
 * if (!result.ok) return sendToDlq(record, result.error); // permanent: retrying cannot help
 */
const parseEventBody = (body: string, now: Date): ParseResult => {
  const bytes = Buffer.byteLength(body, 'utf8');
  if (bytes > maxBodyBytes)
    return fail(`message body is ${bytes} bytes; an event is at most ${maxBodyBytes}`, ErrorCodes.schema);
  if (body.trim() === '') return fail('message body is empty; expected a JSON event', ErrorCodes.invalidJson);

  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch (error) {
    // V8's message quotes the body; keep only the position.
    const position = /position (\d+)/.exec(String((error as Error).message))?.[1];
    return fail(
      `message body is not valid JSON${position === undefined ? '' : ` (error at position ${position})`}`,
      ErrorCodes.invalidJson,
    );
  }

  const parsed = eventSchema.safeParse(json);
  if (!parsed.success) return fail(z.prettifyError(parsed.error), ErrorCodes.schema);

  const event: PeopleEvent = parsed.data;
  const skewMs = Date.parse(event.occurredAt) - now.getTime();
  if (skewMs > maxFutureSkewMs)
    return fail(
      `occurredAt ${event.occurredAt} is more than 24 h after the receiver's clock (${now.toISOString()}): ` +
        "the producer's clock is wrong",
      ErrorCodes.schema,
    );
  return { ok: true, event };
};

/**
 * Completes the user of an event through IAM: the name from the id, or the id from the name.
 * When the event carries both, they are trusted as given and IAM is not asked: the producer
 * knows both, and asking would put IAM on the path of every message for nothing.
 * IAM read failures propagate unchanged (retryable); a user IAM does not know is an
 * `UnknownUserError` (permanent).
 *
 * @example
 * const resolved = await resolveEventUser(event, directory, { deadline });
 * resolved.user // { id: 'fb3f…', name: 'user01' }
 */
const resolveEventUser = async (
  event: PeopleEvent,
  directory: UserDirectoryPort,
  options?: CallOptions,
): Promise<ResolvedEvent> => {
  const { id, name } = event.user;
  let user: IamUser;
  if (id !== undefined && name !== undefined) {
    user = { id, name };
  } else if (id !== undefined) {
    const found = await directory.findById(id, options);
    if (found === undefined) throw new UnknownUserError(`with id ${id}`);
    user = { id, name: found.name };
  } else if (name !== undefined) {
    const found = await directory.findByName(name, options);
    if (found === undefined) throw new UnknownUserError(`named ${JSON.stringify(name)}`);
    user = { id: found.id, name: found.name };
  } else {
    // The schema forbids it; an event built in code without parsing could still do it.
    throw new UnknownUserError('(the event names no user)');
  }
  return { ...event, user } as ResolvedEvent;
};

export type { ParseResult };
export { eventSchema, maxBodyBytes, parseEventBody, resolveEventUser, teamNameRule };

/**
 * The people events that arrive on the queues: their schema, the parser every handler runs on a
 * message body, and the step that completes the user's identity through IAM.
 *
 * Parsing never throws: a bad body is a permanent failure of one message, never of its batch.
 */

import type { CallOptions, IamUser, PeopleEvent, ResolvedEvent, UserDirectoryPort } from '../domain.ts';
import { ErrorCodes, EventParseError, SyncError, UnknownUserError } from '../errors.ts';
import * as z from '../zod.ts';
import { userIdRule, userNameRule } from './names.ts';

/** SQS's historical message limit; anything larger is not one of ours and is never parsed. */
const maxBodyBytes = 256 * 1024;
/** A person reads the reason in the DLQ attributes; longer texts only hide the first problem. */
const maxReasonChars = 1000;
/** Producers' clocks drift, but not by a day: a later `occurredAt` would win every race. */
const maxFutureSkewMs = 24 * 60 * 60 * 1000;
/**
 * How far ahead an `effectiveAt` may be (default 400 days): a leave date years away is a typo
 * that would sit in the store and revoke someone's access on a day nobody remembers.
 */
const defaultMaxEffectiveAheadDays = 400;
const dayMs = 24 * 60 * 60 * 1000;
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

const teamSchema = z.string().check(
  z.superRefine((value, ctx) => {
    const rule = teamNameRule(value);
    if (rule !== undefined) ctx.addIssue({ code: 'custom', message: `team ${rule}` });
  }),
);

/**
 * IAM user names: letters, digits, spaces, `_`, `-`, `.`; never starting with a digit or a space,
 * never ending with a space. The SWR body rules (`userNameRule`) are checked too, so that an event
 * the schema accepts is never one SWR refuses because of its name.
 */
const userNamePattern = /^[A-Za-z_\-.](?:[A-Za-z0-9_\-. ]*[A-Za-z0-9_\-.])?$/;

const userSchema = z
  .strictObject({
    id: z.optional(
      z.string().check(
        z.superRefine((value, ctx) => {
          const rule = userIdRule(value);
          if (rule !== undefined) ctx.addIssue({ code: 'custom', message: rule });
        }),
      ),
    ),
    name: z.optional(
      z.string().check(
        z.superRefine((value, ctx) => {
          const rule = userNameRule(value);
          if (rule !== undefined) ctx.addIssue({ code: 'custom', message: rule });
          else if (!userNamePattern.test(value))
            ctx.addIssue({
              code: 'custom',
              message:
                'must be an IAM user name: letters, digits, spaces, underscores, hyphens and periods, not starting with a digit or a space',
            });
        }),
      ),
    ),
  })
  .check(
    z.refine((user) => user.id !== undefined || user.name !== undefined, {
      error: 'must carry the IAM user id, the IAM user name, or both',
    }),
  );

const common = {
  id: z
    .string()
    .check(
      z.minLength(1, { error: 'must be 1 to 128 characters' }),
      z.maxLength(128, { error: 'must be 1 to 128 characters' }),
      z.regex(/^[^\p{Cc}]+$/u, { error: 'must not contain control characters' }),
    ),
  occurredAt: isoWithZone,
  effectiveAt: z.optional(isoWithZone),
  source: z.optional(z.string().check(z.maxLength(128, { error: 'must be at most 128 characters' }))),
  user: userSchema,
};

const eventSchema = z.discriminatedUnion(
  'type',
  [
    z.strictObject({
      ...common,
      type: z.literal('membership.added'),
      team: teamSchema,
      expiresAt: z.optional(isoWithZone),
    }),
    z.strictObject({ ...common, type: z.literal('membership.removed'), team: teamSchema }),
    z.strictObject({ ...common, type: z.literal('user.offboarded') }),
    z.strictObject({
      ...common,
      type: z.literal('user.teams'),
      teams: z.pipe(
        z
          .array(teamSchema)
          .check(
            z.maxLength(maxTeamsPerSnapshot, { error: `must list at most ${maxTeamsPerSnapshot} teams` }),
          ),
        z.transform((teams: string[]) => [...new Set(teams)]),
      ),
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

interface ParseOptions {
  /** How far ahead of `now` an `effectiveAt` may be (default 400 days). */
  maxEffectiveAheadDays?: number;
}

/** Nesting deeper than any event has: refused before the schema walks it (stack safety). */
const maxJsonDepth = 16;

/** The nesting depth of a parsed JSON value, counted without recursion, stopping past `limit`. */
const depthExceeds = (value: unknown, limit: number): boolean => {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: current, depth } = stack.pop() as { value: unknown; depth: number };
    if (typeof current !== 'object' || current === null) continue;
    if (depth >= limit) return true;
    for (const child of Object.values(current)) stack.push({ value: child, depth: depth + 1 });
  }
  return false;
};

/**
 * Parses and validates one message body. Never throws; never echoes the body in the reason.
 *
 * @example
 * const result = parseEventBody(record.body, new Date());
 * if (!result.ok) return sendToDlq(record, result.error); // permanent: retrying cannot help
 */
const parseEventBody = (body: string, now: Date, options: ParseOptions = {}): ParseResult => {
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

  if (depthExceeds(json, maxJsonDepth))
    return fail(`message body nests deeper than ${maxJsonDepth} levels; an event is flat`, ErrorCodes.schema);
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
  const aheadDays = options.maxEffectiveAheadDays ?? defaultMaxEffectiveAheadDays;
  if (event.effectiveAt !== undefined && Date.parse(event.effectiveAt) - now.getTime() > aheadDays * dayMs)
    return fail(
      `effectiveAt ${event.effectiveAt} is more than ${aheadDays} days ahead (${now.toISOString()}): ` +
        'a date that far is most likely a typo; send it closer to the day, or raise EFFECTIVE_AT_MAX_DAYS',
      ErrorCodes.schema,
    );
  return { ok: true, event };
};

/** Looks a name up among the users the service has known (the audit trail's name index). */
type KnownIdsByName = (userName: string, options?: CallOptions) => Promise<string[]>;

interface ResolveContext {
  directory: UserDirectoryPort;
  /** For leavers IAM no longer knows: the ids the service recorded changes for under this name. */
  knownIdsByName?: KnownIdsByName;
}

/** What resolution found besides the user, for the pipeline's log. */
interface Resolution {
  event: ResolvedEvent;
  /** IAM's current name differs from the name the event carried. */
  renamedFrom?: string;
}

const ambiguous = (name: string, count: number): SyncError =>
  new SyncError(`${count} users share the name ${JSON.stringify(name)}; send the IAM user id`, {
    code: 'AMBIGUOUS_USER',
    retryable: false,
  });

/**
 * A grant needs IAM's current identity: the id confirmed and the name SWR expects in the body. A
 * user IAM does not know is a permanent failure (nobody to grant to).
 */
const resolveForGrant = async (
  event: PeopleEvent,
  context: ResolveContext,
  options?: CallOptions,
): Promise<{ user: IamUser; renamedFrom?: string }> => {
  const { id, name } = event.user;
  if (id !== undefined) {
    const found = await context.directory.findById(id, options);
    if (found === undefined) throw new UnknownUserError(`with id ${id}`);
    return {
      user: { id, name: found.name },
      ...(name !== undefined && name !== found.name ? { renamedFrom: name } : {}),
    };
  }
  const found = await context.directory.findByName(name as string, options);
  if (found === undefined) throw new UnknownUserError(`named ${JSON.stringify(name)}`);
  return { user: { id: found.id, name: found.name } };
};

/**
 * The id of a leaver known only by name: IAM first (the current holder of the name), then the
 * users the service has recorded under that name (IAM deletes leavers, often before HR sends the
 * event). Neither knowing the name is a permanent failure; two users sharing it too.
 */
const idOfLeaver = async (name: string, context: ResolveContext, options?: CallOptions): Promise<IamUser> => {
  const found = await context.directory.findByName(name, options);
  if (found !== undefined) return { id: found.id, name: found.name };
  const known = (await context.knownIdsByName?.(name, options)) ?? [];
  if (known.length === 1) return { id: known[0] as string, name };
  if (known.length > 1) throw ambiguous(name, known.length);
  throw new UnknownUserError(`named ${JSON.stringify(name)} (and the service has no record of that name)`);
};

/**
 * A removal only takes away, and a revoke needs only the id (the DELETE body is an array of ids):
 * IAM is asked for the current name (a lowered level is a PATCH, which carries the name) when it
 * answers, and not needed when it does not. An empty name keeps the one the store has.
 */
const resolveForRemoval = async (
  event: PeopleEvent,
  context: ResolveContext,
  options?: CallOptions,
): Promise<IamUser> => {
  const { id, name } = event.user;
  if (id === undefined) return idOfLeaver(name as string, context, options);
  if (event.type === 'user.offboarded') return { id, name: name ?? '' };
  try {
    const found = await context.directory.findById(id, options);
    return { id, name: found?.name ?? name ?? '' };
  } catch (error) {
    if (error instanceof SyncError && !error.retryable) throw error;
    return { id, name: name ?? '' };
  }
};

/**
 * Completes the user of an event. Joins and snapshots (which may grant) take IAM's current
 * identity: a user IAM does not know is an `UnknownUserError` (permanent), and when IAM renamed the
 * user, SWR gets the new name. Removals and offboardings never need IAM for a user given by id
 * (an offboarding never asks it): revoking needs only the id. A user named without an id is looked
 * up in IAM, and for a leaver IAM no longer knows, among the users the service has recorded.
 * IAM read failures propagate unchanged (retryable) where IAM is needed.
 *
 * @example
 * const { event: resolved } = await resolveEventUser(event, { directory }, { deadline });
 * resolved.user // { id: 'fb3f…', name: 'user01' }
 */
const resolveEventUser = async (
  event: PeopleEvent,
  context: ResolveContext,
  options?: CallOptions,
): Promise<Resolution> => {
  if (event.user.id === undefined && event.user.name === undefined)
    // The schema forbids it; an event built in code without parsing could still do it.
    throw new UnknownUserError('(the event names no user)');
  if (event.type === 'membership.added' || event.type === 'user.teams') {
    const { user, renamedFrom } = await resolveForGrant(event, context, options);
    return {
      event: { ...event, user } as ResolvedEvent,
      ...(renamedFrom === undefined ? {} : { renamedFrom }),
    };
  }
  const user = await resolveForRemoval(event, context, options);
  return { event: { ...event, user } as ResolvedEvent };
};

export type { KnownIdsByName, ParseOptions, ParseResult, Resolution, ResolveContext };
export {
  defaultMaxEffectiveAheadDays,
  eventSchema,
  maxBodyBytes,
  parseEventBody,
  resolveEventUser,
  teamNameRule,
};

/** Stage 2: the half of each user an event did not carry, from IAM (cached) where it is needed. */
import { resolveEventUser } from '../core/events.ts';
import type { PeopleEvent, ResolvedEvent } from '../domain.ts';
import { mapLimit } from '../pool.ts';
import { asSyncError } from '../read-targets.ts';
import type { BatchState } from './batch-state.ts';
import type { PipelineDeps, PipelineSettings } from './types.ts';

/**
 * Resolves every pending message's user; a failure fails that message only. Messages behind a
 * retried one of their FIFO group are held, so a group's order holds.
 *
 * @example const resolved = await resolveStage(batch, events, deps, settings, deadline);
 */
const resolveStage = async (
  batch: BatchState,
  events: ReadonlyMap<string, PeopleEvent>,
  deps: PipelineDeps,
  settings: PipelineSettings,
  deadline: number,
): Promise<Map<string, ResolvedEvent>> => {
  const resolved = new Map<string, ResolvedEvent>();
  const context = {
    directory: deps.directory,
    ...(deps.knownIdsByName === undefined ? {} : { knownIdsByName: deps.knownIdsByName }),
  };
  await mapLimit(batch.pending(), settings.concurrency, async (record) => {
    const event = events.get(record.messageId) as PeopleEvent;
    try {
      const resolution = await resolveEventUser(event, context, { deadline });
      resolved.set(record.messageId, resolution.event);
      if (resolution.renamedFrom !== undefined)
        deps.log.info('IAM renamed the user; SWR gets the current name', {
          eventId: event.id,
          userId: resolution.event.user.id,
          eventName: resolution.renamedFrom,
          iamName: resolution.event.user.name,
        });
    } catch (error) {
      batch.fail(record.messageId, asSyncError(error));
    }
  });
  batch.holdBehindRetries();
  return resolved;
};

export { resolveStage };

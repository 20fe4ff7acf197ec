/** Stage 1: each body parsed on its own, so that one bad message never fails its batch. */
import { parseEventBody } from '../core/events.ts';
import type { PeopleEvent } from '../domain.ts';
import type { BatchState } from './batch-state.ts';
import type { PipelineSettings } from './types.ts';

/**
 * @example const events = parseStage(batch, new Date(), settings); // messageId → event
 */
const parseStage = (batch: BatchState, now: Date, settings: PipelineSettings): Map<string, PeopleEvent> => {
  const events = new Map<string, PeopleEvent>();
  for (const record of batch.records) {
    const result = parseEventBody(
      record.body,
      now,
      settings.maxEffectiveAheadDays === undefined
        ? {}
        : { maxEffectiveAheadDays: settings.maxEffectiveAheadDays },
    );
    if (result.ok) events.set(record.messageId, result.event);
    else batch.fail(record.messageId, result.error);
  }
  return events;
};

export { parseStage };

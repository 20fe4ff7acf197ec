/** Consumes `access-changes`: joins, leaves and team snapshots. Wiring only. */
import { createQueueRuntime } from '../lib/runtime.ts';
import { createSqsHandler } from '../lib/sqs-handler.ts';

export const handler = createSqsHandler(createQueueRuntime({ functionName: 'sync', queue: 'accessChanges' }));

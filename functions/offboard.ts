/**
 * Consumes `offboarding`: people leaving the company, on a queue of its own so that a
 * reorganisation flooding `access-changes` never delays a revocation. Wiring only.
 */
import { createQueueRuntime } from '../lib/runtime.ts';
import { createSqsHandler } from '../lib/sqs-handler.ts';

export const handler = createSqsHandler(
  createQueueRuntime({ functionName: 'offboard', queue: 'offboarding' }),
);

/**
 * Serves the identity providers behind the HTTP API: SCIM 2.0 (`/scim/v2`), Okta Event Hooks
 * (`/hooks/okta`) and our own events (`/events`, IAM). Wiring only.
 */
import { createIntakeHandler } from '../lib/intake/handler.ts';
import { createIntakeRuntime } from '../lib/intake/runtime.ts';

export const handler = createIntakeHandler(createIntakeRuntime({ functionName: 'intake' }));

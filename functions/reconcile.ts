/**
 * Scheduled (EventBridge): compares desired and actual SWR permissions on every policy target
 * and repairs drift, behind the mass-revoke guard. Wiring only.
 */
import { createReconcileHandler } from '../lib/reconcile/handler.ts';
import { createReconcileRuntime } from '../lib/reconcile/runtime.ts';

export const handler = createReconcileHandler(createReconcileRuntime({ functionName: 'reconcile' }));

/** The shapes shared by the simulator's route handlers. */
import type { RevokeMissing } from './access.ts';
import type { SignedRequest } from './aksk.ts';
import type { Authenticator, Service } from './auth.ts';
import type { Call } from './faults.ts';
import type { Failure, Reply } from './replies.ts';
import type { Routable } from './router.ts';
import type { World } from './world.ts';

interface HandlerInput extends SignedRequest {
  params: Record<string, string>;
  query: URLSearchParams;
  /** The authenticated user id; empty for routes that authenticate themselves (token issuance). */
  caller: string;
  /** `http://127.0.0.1:PORT` of the listener that received the call. */
  origin: string;
}

interface HandlerDeps {
  world: World;
  auth: Authenticator;
  revokeMissing: RevokeMissing;
  /** POST/PATCH refuse a user_name that is not IAM's current name for the id (4001066). */
  strictUserNames: boolean;
  now: () => number;
}

interface SimRoute extends Routable {
  service: Service;
  /** False only where the handler authenticates by itself (password in the body). */
  authenticate: boolean;
  /** What fault rules see; present on every faultable route (SWR permissions and lists, IAM). */
  call?: (params: Record<string, string>, query: URLSearchParams) => Call;
  handle: (input: HandlerInput, deps: HandlerDeps) => Reply | Failure;
}

export type { HandlerDeps, HandlerInput, SimRoute };

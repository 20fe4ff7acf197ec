/**
 * The offboarding sweep: someone who leaves the company loses every permission in the
 * namespaces the service owns (`policy.managedNamespaces`), not only those the policy names —
 * a hand-made grant on a repository no team mentions must not survive offboarding either.
 * The repositories are listed from SWR once per batch; a listing that fails never counts as
 * "no repositories": the user's messages are failed with the listing's error (and retried).
 */
import { isTombstoned } from '../core/desired.ts';
import type { BatchUser } from '../core/planner.ts';
import type { CallOptions, Policy, SwrPermissionsPort, Target } from '../domain.ts';
import { targetKey } from '../domain.ts';
import { ErrorCodes, SyncError } from '../errors.ts';
import { mapLimit } from '../pool.ts';

type Listing = { ok: true; targets: Target[] } | { ok: false; error: SyncError };

interface SweepResult {
  /** The same users, those being offboarded with `extraTargets` set to what could be listed. */
  users: BatchUser[];
  /** Users whose sweep is incomplete (a listing failed), with the first listing error. */
  failures: Map<string, SyncError>;
}

interface Sweeper {
  /** Adds the sweep targets to every user offboarded in the batch or tombstoned. */
  attach(users: readonly BatchUser[]): Promise<SweepResult>;
}

interface SweeperOptions {
  swr: SwrPermissionsPort;
  policy: Policy;
  /** Absolute epoch ms handed to each listing call. */
  deadline?: number;
  /** Listings in flight at once. */
  concurrency: number;
}

/** True for a batch user who must lose everything: offboarded in the batch, or tombstoned. */
const needsSweep = (user: BatchUser): boolean => user.offboardingInBatch || isTombstoned(user.after);

const listingError = (namespace: string, error: unknown): SyncError => {
  const why = error instanceof SyncError ? error.message : `unexpected ${(error as Error)?.name ?? 'error'}`;
  return new SyncError(
    `repositories of managed namespace ${namespace} could not be listed (${why}); the offboarding sweep is incomplete`,
    {
      code: error instanceof SyncError ? error.code : ErrorCodes.crash,
      retryable: error instanceof SyncError ? error.retryable : true,
      target: namespace,
      cause: error,
    },
  );
};

/**
 * A sweeper for one batch: each managed namespace is listed at most once, however many users
 * of the batch (and re-plan rounds) need it.
 *
 * @example
 * const sweeper = createSweeper({ swr, policy, deadline, concurrency: 4 });
 * const { users, failures } = await sweeper.attach(batchUsers);
 * for (const [userId, error] of failures) failMessagesOf(userId, error);
 */
const createSweeper = (options: SweeperOptions): Sweeper => {
  const { swr, policy } = options;
  const listings = new Map<string, Promise<Listing>>();
  const callOptions: CallOptions = options.deadline === undefined ? {} : { deadline: options.deadline };

  const list = (namespace: string): Promise<Listing> => {
    let listing = listings.get(namespace);
    if (listing === undefined) {
      listing = swr.listRepositories(namespace, callOptions).then(
        (repositories): Listing => ({
          ok: true,
          targets: [
            { kind: 'namespace', namespace },
            ...repositories.map((repository): Target => ({ kind: 'repo', namespace, repository })),
          ],
        }),
        (error: unknown): Listing => ({ ok: false, error: listingError(namespace, error) }),
      );
      listings.set(namespace, listing);
    }
    return listing;
  };

  return {
    async attach(users) {
      const failures = new Map<string, SyncError>();
      const sweeping = users.filter(needsSweep);
      if (sweeping.length === 0 || policy.managedNamespaces.length === 0)
        return { users: [...users], failures };
      const results = await mapLimit(policy.managedNamespaces, options.concurrency, list);
      const targets = results.flatMap((result) => (result.ok ? result.targets : []));
      const firstError = results.flatMap((result) => (result.ok ? [] : [result.error]))[0];
      // Even with a listing missing, what could be listed is swept now: access goes as early as
      // possible, and the retry finishes the rest.
      const swept = users.map((user) => {
        if (!needsSweep(user)) return user;
        if (firstError !== undefined) failures.set(user.userId, firstError);
        const byKey = new Map<string, Target>();
        for (const target of [...(user.extraTargets ?? []), ...targets])
          byKey.set(`${target.kind}:${targetKey(target)}`, target);
        return { ...user, extraTargets: [...byKey.values()] };
      });
      return { users: swept, failures };
    },
  };
};

export type { Sweeper, SweeperOptions, SweepResult };
export { createSweeper, needsSweep };

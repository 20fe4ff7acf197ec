/**
 * The mass-revoke guard. A broken policy (a team renamed, an entry deleted by mistake) or an
 * empty membership table makes reconcile "correctly" revoke half the company. Above a count or
 * a share of the grants it found, a run applies nothing unless a person said it may.
 *
 * Revocations a person already decided — an offboarding, a membership's end date — are counted
 * apart and never block: they are the routine, not the accident. Below an absolute floor nothing
 * blocks either: four grants in a small account are 27% of it, and no mass revoke.
 */

interface MassRevokeLimits {
  /** Most revocations one run may apply (MASS_REVOKE_MAX_COUNT). */
  maxCount: number;
  /** Largest share (0–1) of the grants found on reconciled targets one run may revoke (MASS_REVOKE_MAX_SHARE). */
  maxShare: number;
  /** Revocations at or below this count never block, whatever their share (MASS_REVOKE_FLOOR). */
  floor?: number;
}

/** The default floor: a handful of revocations is never a mass revoke. */
const defaultFloor = 10;

const GuardStatuses = {
  /** Within the limits. */
  ok: 'ok',
  /** Over a limit: nothing was applied. */
  blocked: 'blocked',
  /** Over a limit, applied all the same because `allowMassRevoke` was passed. */
  overridden: 'overridden',
} as const;

type GuardStatus = (typeof GuardStatuses)[keyof typeof GuardStatuses];

interface GuardReport extends MassRevokeLimits {
  status: GuardStatus;
  /** Revocations the run planned that no person decided (what the limits apply to). */
  revokes: number;
  /** Revocations a person decided (offboardings, expired memberships): counted apart, never blocking. */
  decided: number;
  /** Grants found on the targets that could be read (the caller itself not counted). */
  found: number;
  /** `revokes / found` (0 when nothing was found); decided revocations not counted. */
  share: number;
  /** Which limit was crossed, when one was. */
  reason?: string;
}

/**
 * Decides whether a run may apply its plan. Both limits are strict: exactly `maxCount`
 * revocations, or exactly `maxShare` of the grants, still pass; so do `floor` revocations or
 * fewer. `decided` revocations (offboardings, expiries) are reported but never limited.
 *
 * @example
 * const guard = checkMassRevoke({ revokes: 60, decided: 3, found: 100 }, { maxCount: 50, maxShare: 0.2 }, false);
 * guard.status; // 'blocked'
 */
const checkMassRevoke = (
  counts: { revokes: number; decided?: number; found: number },
  limits: MassRevokeLimits,
  allowMassRevoke: boolean,
): GuardReport => {
  const floor = limits.floor ?? defaultFloor;
  const share = counts.found === 0 ? 0 : counts.revokes / counts.found;
  const crossed: string[] = [];
  if (counts.revokes > limits.maxCount)
    crossed.push(`${counts.revokes} revocations exceed the limit of ${limits.maxCount}`);
  if (share > limits.maxShare && counts.revokes > floor)
    crossed.push(
      `${counts.revokes} of ${counts.found} grants (${formatShare(share)}) exceed the limit of ${formatShare(limits.maxShare)}`,
    );
  const base = {
    ...limits,
    floor,
    revokes: counts.revokes,
    decided: counts.decided ?? 0,
    found: counts.found,
    share,
  };
  if (crossed.length === 0) return { ...base, status: GuardStatuses.ok };
  return {
    ...base,
    status: allowMassRevoke ? GuardStatuses.overridden : GuardStatuses.blocked,
    reason: `${crossed.join('; ')}${allowMassRevoke ? '' : `. ${overrideHint}`}`,
  };
};

/** The same words wherever a blocked run is reported: how a person lets it through. */
const overrideHint =
  'After checking the plan (reconcile --dry-run), apply it with `swr-access reconcile --allow-mass-revoke`, or invoke the function with {"allowMassRevoke": true}';

/** `0.2` → `20%`, `0.0833…` → `8.3%`. */
const formatShare = (share: number): string => `${Number((share * 100).toFixed(1))}%`;

export type { GuardReport, GuardStatus, MassRevokeLimits };
export { checkMassRevoke, defaultFloor, formatShare, GuardStatuses, overrideHint };

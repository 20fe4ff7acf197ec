/**
 * The mass-revoke guard. A broken policy (a team renamed, an entry deleted by mistake) or an
 * empty membership table makes reconcile "correctly" revoke half the company. Above a count or
 * a share of the grants it found, a run applies nothing unless a person said it may.
 */

interface MassRevokeLimits {
  /** Most revocations one run may apply (MASS_REVOKE_MAX_COUNT). */
  maxCount: number;
  /** Largest share (0–1) of the grants found on reconciled targets one run may revoke (MASS_REVOKE_MAX_SHARE). */
  maxShare: number;
}

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
  /** Revocations the run planned. */
  revokes: number;
  /** Grants found on the targets that could be read (the caller itself not counted). */
  found: number;
  /** `revokes / found` (0 when nothing was found). */
  share: number;
  /** Which limit was crossed, when one was. */
  reason?: string;
}

/**
 * Decides whether a run may apply its plan. Both limits are strict: exactly `maxCount`
 * revocations, or exactly `maxShare` of the grants, still pass.
 *
 * @example
 * const guard = checkMassRevoke({ revokes: 60, found: 100 }, { maxCount: 50, maxShare: 0.2 }, false);
 * guard.status; // 'blocked'
 */
const checkMassRevoke = (
  counts: { revokes: number; found: number },
  limits: MassRevokeLimits,
  allowMassRevoke: boolean,
): GuardReport => {
  const share = counts.found === 0 ? 0 : counts.revokes / counts.found;
  const crossed: string[] = [];
  if (counts.revokes > limits.maxCount)
    crossed.push(`${counts.revokes} revocations exceed the limit of ${limits.maxCount}`);
  if (share > limits.maxShare)
    crossed.push(
      `${counts.revokes} of ${counts.found} grants (${formatShare(share)}) exceed the limit of ${formatShare(limits.maxShare)}`,
    );
  const base = { ...limits, revokes: counts.revokes, found: counts.found, share };
  if (crossed.length === 0) return { ...base, status: GuardStatuses.ok };
  return {
    ...base,
    status: allowMassRevoke ? GuardStatuses.overridden : GuardStatuses.blocked,
    reason: crossed.join('; '),
  };
};

/** `0.2` → `20%`, `0.0833…` → `8.3%`. */
const formatShare = (share: number): string => `${Number((share * 100).toFixed(1))}%`;

export type { GuardReport, GuardStatus, MassRevokeLimits };
export { checkMassRevoke, formatShare, GuardStatuses };

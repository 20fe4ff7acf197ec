/**
 * Sorts the simulator's request counts (`sim.requestCounts()`, keyed `METHOD /route/{template}`)
 * into the kinds the benchmarks report. Pure.
 */

interface CallCounts {
  /** GET of repository or namespace permissions. */
  reads: number;
  post: number;
  patch: number;
  delete: number;
  /** POST + PATCH + DELETE of permissions. */
  writes: number;
  /** Repository listings. */
  lists: number;
  /** Every IAM call (tokens, user look-ups). */
  iam: number;
  /** Every SWR call (reads, writes, lists). */
  swr: number;
  /** Anything else (unmatched routes). */
  other: number;
}

const accessRoute = /^(GET|POST|PATCH|DELETE) \/v2\/manage\/namespaces\/\{ns\}(\/repos\/\{repo\})?\/access$/;

/**
 * @example classifyCounts({ 'GET /v2/manage/namespaces/{ns}/access': 3, 'POST /v3/auth/tokens': 1 }).reads // 3
 */
const classifyCounts = (counts: Readonly<Record<string, number>>): CallCounts => {
  const result: CallCounts = {
    reads: 0,
    post: 0,
    patch: 0,
    delete: 0,
    writes: 0,
    lists: 0,
    iam: 0,
    swr: 0,
    other: 0,
  };
  for (const [route, count] of Object.entries(counts)) {
    const access = accessRoute.exec(route);
    if (access?.[1] === 'GET') result.reads += count;
    else if (access?.[1] === 'POST') result.post += count;
    else if (access?.[1] === 'PATCH') result.patch += count;
    else if (access?.[1] === 'DELETE') result.delete += count;
    else if (/^GET \/v[23]\/manage\/repos$/.test(route)) result.lists += count;
    else if (/ \/v3\/(auth|users)/.test(route)) result.iam += count;
    else result.other += count;
  }
  result.writes = result.post + result.patch + result.delete;
  result.swr = result.reads + result.writes + result.lists;
  return result;
};

/** `after - before` per route: counts of one phase of a run without resetting the simulator. */
const countsSince = (
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
): Record<string, number> =>
  Object.fromEntries(
    Object.entries(after)
      .map(([route, count]) => [route, count - (before[route] ?? 0)] as const)
      .filter(([, count]) => count !== 0),
  );

export type { CallCounts };
export { classifyCounts, countsSince };

/**
 * Runs `worker` over `items` with at most `limit` in flight and returns the results in input
 * order. `worker` should not reject: a rejection fails the whole call, so callers catch per item.
 *
 * @example const accesses = await mapLimit(targets, 8, (target) => read(target));
 */
const mapLimit = async <T, R>(
  items: readonly T[],
  limit: number,
  worker: (item: T, index: number) => Promise<R>,
): Promise<R[]> => {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await worker(items[index] as T, index);
    }
  };
  const lanes = Math.max(1, Math.min(Number.isFinite(limit) ? Math.floor(limit) : 1, items.length));
  await Promise.all(Array.from({ length: lanes }, lane));
  return results;
};

export { mapLimit };
